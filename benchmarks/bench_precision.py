"""Issue 16: does bf16 autocast cost attacks or defenses any strength, and what does it buy on this CPU?

    nice -n 10 python benchmarks/bench_precision.py            # ~10-15 min on 2 shared cores
    python benchmarks/bench_precision.py --quick               # a smoke run (1 seed, tiny sizes)

Small on purpose (2 shared cores): ross_cnn at width 0.25, MNIST (embedded), 3 seeds, a few dozen
images per attack, 60-step training runs. Every success flag and norm is the recorded kind: an fp32
pass (attacks.base.finish) on the attack's images; only the attack's own passes run under autocast.
Timings are interleaved in one process, one torch thread (the cores are shared with other jobs).
Writes the `precision` section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from advlegit.generation import precision  # noqa: E402
from advlegit.generation.attacks import get_attack, pgd_linf  # noqa: E402
from advlegit.generation.attacks.base import finish  # noqa: E402
from advlegit.generation.data import load_embedded  # noqa: E402
from advlegit.generation.defenses import TrainContext, build_defense, defense_params  # noqa: E402
from advlegit.generation.metrics import accuracy  # noqa: E402
from advlegit.generation.models import build_model  # noqa: E402
from advlegit.generation.train import fit  # noqa: E402
from benchmarks._report import write_section  # noqa: E402

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}
ATTACKS = {  # small but real settings; success is judged on the attack's own (unquantized) output
    "fgsm": {"epsilon": 0.15},
    "pgd_linf": {"epsilon": 0.1, "steps": 20},
    "pgd_l2": {"epsilon": 1.5, "steps": 20},
    "tgsm": {"epsilon": 0.2},
    "jsma": {"theta": 1.0, "gamma": 0.1},
    "cw_l2": {"steps": 30, "binary_search_steps": 3, "lr": 0.05},
    "deepfool": {"steps": 20},
}
TARGETED = {"tgsm", "jsma"}
DEFENSES = {"gradreg": {"lambda": 10.0}, "pgd_adv": {"epsilon": 0.1, "steps": 3, "step_size": 0.05},
            "ig_norm": {"epsilon": 0.1, "steps": 2, "step_size": 0.05, "ig_steps": 4, "inner_ig_steps": 2}}


def interval(values: list[float]) -> str:
    m = statistics.fmean(values)
    if len(values) < 2:
        return f"{m:.3f}"
    h = T975[len(values) - 1] * statistics.stdev(values) / math.sqrt(len(values))
    return f"{m:.3f} [{m - h:.3f}, {m + h:.3f}]"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def train(kind: str, params: dict, x, y, steps: int, seed: int, prec: str, width: float = 0.25) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("ross_cnn", width=width)
    defense = build_defense(kind, defense_params(kind, params))
    defense.prepare(TrainContext(train_model=None, total_steps=steps))
    return fit(model, defense.loss, x, y, steps=steps, batch_size=32, lr=2e-3, seed=seed, desc=kind,
               precision=prec)


def attack_strength(data, seeds, n_images, train_steps) -> tuple[str, dict]:
    (x, y), (xt, yt) = data
    rows = {(a, p): {"success": [], "l2": [], "linf": []} for a in ATTACKS for p in ("fp32", "bf16")}
    times = {(a, p): 0.0 for a in ATTACKS for p in ("fp32", "bf16")}
    for seed in seeds:
        model = train("normal", {}, x, y, train_steps, seed, "fp32")
        xs, ys = xt[seed * n_images:(seed + 1) * n_images], yt[seed * n_images:(seed + 1) * n_images]
        target = (ys + 1) % 10
        for name, params in ATTACKS.items():
            for prec in ("fp32", "bf16"):  # interleaved: the same load for both
                kw = {"target": target} if name in TARGETED else {}
                with precision.attacking(prec, "cpu", model):
                    res, dt = timed(lambda: get_attack(name)(model, xs, ys, **kw, **params))  # noqa: B023
                rec = finish(model, xs, res.images, ys, kw.get("target"))  # fp32, as recorded
                r = rows[(name, prec)]
                r["success"].append(rec.success.float().mean().item())
                ok = rec.success
                r["l2"].append(rec.norms["l2"][ok].mean().item() if ok.any() else float("nan"))
                r["linf"].append(rec.norms["linf"][ok].mean().item() if ok.any() else float("nan"))
                times[(name, prec)] += dt
    lines = ["| attack | params | success fp32 | success bf16 | mean L2 (successes) fp32 | bf16 | "
             "mean L-inf fp32 | bf16 | time bf16/fp32 |", "|---|---|---|---|---|---|---|---|---|"]
    for name, params in ATTACKS.items():
        f, b = rows[(name, "fp32")], rows[(name, "bf16")]
        lines.append(f"| {name} | {params} | {interval(f['success'])} | {interval(b['success'])} | "
                     f"{interval(f['l2'])} | {interval(b['l2'])} | {interval(f['linf'])} | {interval(b['linf'])} | "
                     f"{times[(name, 'bf16')] / times[(name, 'fp32')]:.2f}× |")
    return "\n".join(lines), rows


def defense_strength(data, seeds, steps, n_eval) -> str:
    (x, y), (xt, yt) = data
    xe, ye = xt[:n_eval], yt[:n_eval]
    lines = ["| defense | params | clean acc fp32 | clean acc bf16 | PGD-10 acc (eps 0.1) fp32 | bf16 | "
             "train time bf16/fp32 |", "|---|---|---|---|---|---|---|"]
    for kind, params in DEFENSES.items():
        acc = {p: {"clean": [], "robust": []} for p in ("fp32", "bf16")}
        spent = {"fp32": 0.0, "bf16": 0.0}
        for seed in seeds:
            for prec in ("fp32", "bf16"):
                model, dt = timed(lambda: train(kind, params, x, y, steps, seed, prec))  # noqa: B023
                spent[prec] += dt
                acc[prec]["clean"].append(accuracy(model, xe, ye))
                adv = pgd_linf(model, xe, ye, epsilon=0.1, steps=10, seed=seed).images  # fp32 attack
                acc[prec]["robust"].append(accuracy(model, adv, ye))
        lines.append(f"| {kind} | {params} | {interval(acc['fp32']['clean'])} | {interval(acc['bf16']['clean'])} | "
                     f"{interval(acc['fp32']['robust'])} | {interval(acc['bf16']['robust'])} | "
                     f"{spent['bf16'] / spent['fp32']:.2f}× |")
    return "\n".join(lines)


def conv_linear_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass for one image (conv and linear layers; the rest is noise)."""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total


def cpu_peak() -> tuple[float, str]:
    """fp32 multiply-adds/s: cores x clock x FMA lanes. AVX2+FMA (Zen): 2 FMA pipes x 8 fp32 = 16 MACs/cycle;
    AVX-512: 2 x 16 = 32 (one 512-bit pipe on some parts: 16). No AVX512_BF16/AMX here, so bf16 has
    no faster path: its peak is the fp32 one (bf16 is converted to fp32 for the FMA)."""
    flags = Path("/proc/cpuinfo").read_text()
    mhz = max(float(line.split(":")[1]) for line in flags.splitlines() if line.startswith("cpu MHz"))
    per_cycle = 32 if " avx512f" in flags else 16 if " fma" in flags else 4
    threads = torch.get_num_threads()
    how = (f"{threads} thread(s) × {mhz:.0f} MHz (/proc/cpuinfo) × {per_cycle} fp32 MACs/cycle "
           f"({'AVX-512' if per_cycle == 32 else 'AVX2+FMA: 2 pipes × 8 lanes'})")
    return threads * mhz * 1e6 * per_cycle, how


def pgd_vs_torchattacks(data, steps_train, reps, batch, width) -> str:
    import torchattacks
    (x, y), (xt, yt) = data
    model = train("normal", {}, x, y, steps_train, 0, "fp32", width=width).eval()
    xs, ys = xt[:batch], yt[:batch]
    ta = torchattacks.PGD(model, eps=0.1, alpha=2.5 * 0.1 / 40, steps=40, random_start=True)
    runs = {"fp32": [], "bf16": [], "torchattacks": []}
    succ = {}
    for _ in range(reps):
        for name in runs:
            if name == "torchattacks":
                torch.manual_seed(0)
                adv, dt = timed(lambda: ta(xs, ys))
            else:
                with precision.attacking(name, "cpu", model):
                    res, dt = timed(lambda: pgd_linf(model, xs, ys, epsilon=0.1, steps=40, seed=0))
                adv = res.images
            runs[name].append(dt)
            succ[name] = finish(model, xs, adv, ys, None).success.float().mean().item()
    macs = conv_linear_macs(model, tuple(xs.shape[1:]))
    step_macs = 2 * macs * batch  # forward + input-backward (autograd.grad w.r.t. x only: no weight grads)
    peak, how = cpu_peak()
    lines = [f"Ross CNN width {width}, batch {batch}, PGD-40 L-inf eps 0.1, {reps} interleaved repetitions "
             f"(median). Model: {macs / 1e6:.2f} M MACs per image forward; a PGD step = forward + input "
             f"backward ≈ 2 × that = {step_macs / 1e6:.1f} M MACs per batch. Peak: {how} = "
             f"{peak / 1e9:.1f} G MACs/s.", "",
             "| run | median s | vs torchattacks | success | achieved G MACs/s | share of peak |",
             "|---|---|---|---|---|---|"]
    base = statistics.median(runs["torchattacks"])
    for name, ts in runs.items():
        med = statistics.median(ts)
        rate = 40 * step_macs / med
        lines.append(f"| {name if name == 'torchattacks' else 'advlegit pgd_linf ' + name} | {med:.2f} | "
                     f"{base / med:.2f}× | {succ[name]:.3f} | {rate / 1e9:.2f} | {100 * rate / peak:.1f} % |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--attack", help="only this attack's strength row, printed (not written)")
    args = ap.parse_args()
    if args.attack:
        for name in list(ATTACKS):
            if name != args.attack:
                del ATTACKS[name]
    torch.set_num_threads(1)  # 2 shared cores: more threads only oversubscribe them
    seeds = [0] if args.quick else [0, 1, 2]
    n_images, train_steps, def_steps = (8, 20, 4) if args.quick else (24, 150, 30)
    ds = load_embedded()
    order = torch.from_numpy(ds.images).shape[0]
    perm = torch.randperm(order, generator=torch.Generator().manual_seed(0))
    x, y = torch.from_numpy(ds.images)[perm[:2000]], torch.from_numpy(ds.labels)[perm[:2000]]
    xt, yt = torch.from_numpy(ds.images)[perm[2000:2300]], torch.from_numpy(ds.labels)[perm[2000:2300]]
    data = ((x, y), (xt, yt))
    started = time.time()
    load = os.getloadavg()
    cap = torch.backends.cpu.get_cpu_capability()
    print("attacks...", flush=True)
    attack_table, _ = attack_strength(data, seeds, n_images, train_steps)
    if args.attack:
        print(attack_table)
        return
    print("defenses...", flush=True)
    defense_table = defense_strength(data, seeds, def_steps, 100 if not args.quick else 20)
    print("pgd vs torchattacks...", flush=True)
    pgd_table = pgd_vs_torchattacks(data, train_steps, 1 if args.quick else 3, 32 if args.quick else 64,
                                    0.25 if args.quick else 0.5)
    load_end = os.getloadavg()
    body = f"""## Mixed precision: bf16 autocast vs fp32 (`benchmarks/bench_precision.py`, issue 16)

CPU capability (`torch.backends.cpu.get_cpu_capability()`): **{cap}**; oneDNN bf16 supported:
**{bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}**; so `precision = "auto"` resolves to
**{precision.resolve("auto", "cpu")}** here. Load average (1/5/15 min) at start {"/".join(f"{v:.1f}" for v in load)},
at end {load_end[0]:.1f}/{load_end[1]:.1f}/{load_end[2]:.1f} (2 cores shared with other jobs); one torch thread.
Seeds {seeds}; mean [95 % t-interval across seeds]. Small on purpose: ross_cnn width 0.25 trained
{train_steps} steps on 2,000 embedded MNIST digits, {n_images} test digits per seed per attack. No GPU was lent
to this session, so nothing here ran on CUDA.

### Attack strength (a normal model per seed; flags and norms from the recorded fp32 pass)

{attack_table}

### Defense strength (trained {def_steps} steps, batch 32, per seed and precision; evaluated in fp32 on 100 test digits)

{defense_table}

### PGD-40 against torchattacks (fp32), and the distance to the CPU's peak

{pgd_table}

Took {time.time() - started:.0f} s.
"""
    if args.quick:
        print(body)
        return
    write_section("precision", body)
    print(body)


if __name__ == "__main__":
    main()
