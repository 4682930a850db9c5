"""Expected time of the paper configs (examples/paper-*.toml), from short measured runs.

Training dominates these configs, so the estimate is the training time, plus the attribution
attack where a config runs it:
1. For every architecture a config uses, the CPU seconds (process time, one torch thread, so
   other jobs on a shared machine do not inflate it) of one plain training step (cross-entropy,
   forward + backward) at the config's batch size are measured on random images of the config's
   shape: median of --steps steps after a warm-up. On an idle machine one core's wall time is
   about that; two cores give at most a 2x speed-up.
2. Every defense's step costs `advlegit.generation.plan.training_passes` plain passes (the dry run's model).
   That model is checked here by timing each defense kind at reduced inner settings on the same
   net and comparing with its prediction; the measured/predicted ratio corrects the full estimate.
3. GPU: not measured (no GPU in the session that wrote this). A modelled figure: each pass takes
   max(0.5 ms, 3 x MACs x batch / 20 TMAC/s), i.e. small nets are bound by kernel-launch latency.

    nice -n 10 .venv/bin/python benchmarks/bench_paper_configs.py [--steps 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from advlegit.generation.config import load_config  # noqa: E402
from advlegit.generation.defenses import TrainContext, build_defense, defense_params  # noqa: E402
from advlegit.generation.models import build_model  # noqa: E402
from advlegit.generation.plan import Plan, _data, _macs, training_passes  # noqa: E402
from advlegit.generation.train import model_specs  # noqa: E402
from benchmarks._report import write_section  # noqa: E402

# Reduced inner settings for checking the pass model (kind -> params); the ratio carries over.
PROBES = {
    "normal": {}, "fgsm_adv": {}, "gradreg": {}, "etmann_gradreg": {}, "gradreg_adv": {},
    "pgd_adv": {"steps": 4, "step_size": 0.1},
    "int": {"steps": 3, "step_size": 0.1, "ramp_start": 0.0, "ramp_end": 0.0},
    "int2": {"steps": 3, "step_size": 0.1, "ramp_start": 0.0, "ramp_end": 0.0},
    "ig_norm": {"steps": 2, "step_size": 0.15, "ig_steps": 4, "inner_ig_steps": 2},
    "ig_sum_norm": {"steps": 2, "step_size": 0.15, "ig_steps": 4, "inner_ig_steps": 2},
}
GPU_LATENCY_S, GPU_MACS_PER_S = 5e-4, 20e12


def step_seconds(model, kind: str, params: dict, shape, batch: int, classes: int, steps: int) -> float:
    defense = build_defense(kind, defense_params(kind, params))
    defense.prepare(TrainContext(train_model=lambda fn, s: model, total_steps=1000))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = torch.rand(batch, *shape), torch.randint(classes, (batch,))
    times = []
    model.train()
    for i in range(steps + 1):
        t = time.process_time()  # CPU seconds of this process: independent of other jobs on the machine
        loss = defense.loss(model, x, y, 500)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            times.append(time.process_time() - t)
    return statistics.median(times)


def human(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.0f} s"


def estimate(path: Path, steps: int) -> tuple[list[str], float, float]:
    cfg = load_config(path)
    shape, classes = _data(cfg, Plan())
    rows, total_cpu, total_gpu = [], 0.0, 0.0
    plain: dict[tuple, float] = {}
    ratio: dict[tuple, float] = {}
    for spec in model_specs(cfg, "bench"):
        if spec.load is not None:
            continue
        arch = (spec.architecture, spec.width, spec.batch_size)
        build = lambda: build_model(spec.architecture, in_channels=shape[0], num_classes=classes,  # noqa: B023, E731
                                    image_size=shape[-1], width=spec.width, dropout=spec.dropout,  # noqa: B023
                                    batch_norm=spec.batch_norm)  # noqa: B023
        torch.manual_seed(0)
        if arch not in plain:
            plain[arch] = step_seconds(build(), "normal", {}, shape, spec.batch_size, classes, steps)
        kind = "normal" if spec.defense == "distillation" else spec.defense
        if (arch, kind) not in ratio:
            probe = {**spec.defense_params, **PROBES.get(kind, {})}
            measured = step_seconds(build(), kind, probe, shape, spec.batch_size, classes, steps)
            predicted = training_passes(kind, defense_params(kind, probe)) * plain[arch]
            ratio[(arch, kind)] = measured / predicted
        passes = training_passes(spec.defense, spec.defense_params)
        cpu = spec.steps * passes * plain[arch] * ratio[(arch, kind)]
        macs = _macs(build(), shape)
        per_pass = max(GPU_LATENCY_S, 3 * macs * spec.batch_size / GPU_MACS_PER_S)
        gpu = spec.steps * passes * ratio[(arch, kind)] * per_pass
        total_cpu += cpu
        total_gpu += gpu
        rows.append(f"| {path.name} | {spec.name} | {spec.architecture} | {spec.steps:,} x {spec.batch_size} | "
                    f"{plain[arch] * 1000:.0f} ms | {passes:,.0f} | {ratio[(arch, kind)]:.2f} | {human(cpu)} "
                    f"| {human(gpu)} |")
    ic = cfg.interpretability
    if ic.enabled and ic.attribution_attack:
        n_def = sum(s.role == "defended" for s in model_specs(cfg, "bench"))
        ig = ic.attack_ig_steps or ic.ig_steps
        passes = (ic.attack_images or ic.n_images) * ic.attack_steps * ic.attack_restarts * ig * 4 * n_def
        arch = next(iter(plain))
        cpu = passes * plain[arch] / arch[2]
        gpu = passes / arch[2] * GPU_LATENCY_S
        total_cpu += cpu
        total_gpu += gpu
        rows.append(f"| {path.name} | top-k attack, {n_def} models | | {ic.attack_images} images | "
                    f"| {passes:,.0f} image-passes | | {human(cpu)} | {human(gpu)} |")
    return rows, total_cpu, total_gpu


def main() -> None:
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("configs", nargs="*", type=Path)
    args = ap.parse_args()
    configs = args.configs or sorted((ROOT / "examples").glob("paper-*.toml"))
    lines = ["## Paper configs: expected time (`benchmarks/bench_paper_configs.py`)", "",
             "Training time of each model = steps x (passes per step from the dry run's model) x (measured "
             "seconds of one plain step of that net and batch) x (measured/predicted ratio of that defense at "
             "reduced inner settings). CPU: CPU seconds of one torch thread (process time, so the other jobs "
             "sharing the machine do not count); two cores would at best halve it. GPU: **not measured**; "
             f"modelled as max({GPU_LATENCY_S * 1000:g} ms, 3 x MACs x "
             f"batch / {GPU_MACS_PER_S / 1e12:g} TMAC/s) per pass.", "",
             "| config | model | architecture | steps x batch | plain step (1 CPU thread) | passes/step "
             "| measured/predicted | one CPU core | GPU (modelled) |",
             "|---|---|---|---|---|---|---|---|---|"]
    totals = []
    for path in configs:
        rows, cpu, gpu = estimate(path, args.steps)
        lines += rows
        totals.append(f"- `{path.name}`: one CPU core about {human(cpu)}, GPU about {human(gpu)} (modelled)")
        print(totals[-1], flush=True)
    lines += ["", "Totals (training, plus the top-k attack where the config runs it):", *totals]
    write_section("paper-configs", "\n".join(lines))


if __name__ == "__main__":
    main()
