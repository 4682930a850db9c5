"""Attack and training-step throughput: this project vs torchattacks (installed --no-deps) vs a
bare torch loop, in one process, on the same model and batch. Writes ratios to BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_generation.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from advlegit.generation.attacks import fgsm, jsma, pgd_linf  # noqa: E402
from advlegit.generation.data import load_embedded  # noqa: E402
from advlegit.generation.defenses import build_defense, defense_params  # noqa: E402
from advlegit.generation.models import build_model  # noqa: E402
from advlegit.generation.train import fit  # noqa: E402
from benchmarks._report import write_section  # noqa: E402


def best_times(fns: dict, repeats: int) -> dict:
    """Best wall time of each function; runs are interleaved (a, b, c, a, b, c, ...) after one
    warm-up each, so drift in machine speed hits every contender alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def bare_fgsm(model, x, y, eps):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps * g.sign()).clamp(0, 1).detach()


def bare_pgd(model, x, y, eps, alpha, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x_adv = (x + (2 * torch.rand(x.shape, generator=gen) - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = x_adv.detach() + alpha * g.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--jsma-images", type=int, default=16)
    args = ap.parse_args()
    import torchattacks

    torch.manual_seed(0)
    ds = load_embedded()
    order = np.random.default_rng(0).permutation(len(ds.labels))
    xtr, ytr = torch.from_numpy(ds.images[order[:3000]]), torch.from_numpy(ds.labels[order[:3000]])
    batch = order[3000:3000 + args.batch]
    x, y = torch.from_numpy(ds.images[batch]), torch.from_numpy(ds.labels[batch])
    model = build_model("ross_cnn")  # the paper's widths
    normal = build_defense("normal", {})
    fit(model, normal.loss, xtr, ytr, steps=150, batch_size=64, lr=1e-3, seed=0, desc="benchmark model")
    model.eval()
    r = args.repeats
    rows = []

    eps = 0.3
    t = best_times({"ours": lambda: fgsm(model, x, y, epsilon=eps),
                    "ta": lambda: torchattacks.FGSM(model, eps=eps)(x, y),
                    "bare": lambda: bare_fgsm(model, x, y, eps)}, r)
    rows.append(("FGSM", args.batch, t["ours"], t["ta"], t["bare"]))

    t = best_times({"ours": lambda: pgd_linf(model, x, y, epsilon=eps, step_size=0.01, steps=40),
                    "ta": lambda: torchattacks.PGD(model, eps=eps, alpha=0.01, steps=40, random_start=True)(x, y),
                    "bare": lambda: bare_pgd(model, x, y, eps, 0.01, 40)}, r)
    rows.append(("PGD-40 (L-inf)", args.batch, t["ours"], t["ta"], t["bare"]))

    n = args.jsma_images
    xj, yj = x[:n], y[:n]
    t = best_times({"ours": lambda: jsma(model, xj, yj, theta=1.0, gamma=0.1),
                    "ta": lambda: torchattacks.JSMA(model, theta=1.0, gamma=0.1)(xj, yj)}, 1)
    rows.append(("JSMA (θ=1, γ=0.1, target y+1)", n, t["ours"], t["ta"], float("nan")))

    # Training step: double backprop (gradient regularization) vs a plain cross-entropy step.
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(len(ytr), (64,), generator=gen) for _ in range(10)]

    def steps(kind, params):
        m = build_model("ross_cnn")
        d = build_defense(kind, defense_params(kind, params))
        opt = torch.optim.Adam(m.parameters(), 1e-3)
        m.train()

        def run():
            for i, idx in enumerate(batches):
                loss = d.loss(m, xtr[idx], ytr[idx], i)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return run

    t = best_times({"plain": steps("normal", {}), "dbp": steps("gradreg", {"lambda": 110.0})}, r)
    plain, dbp = t["plain"] / len(batches), t["dbp"] / len(batches)

    lines = ["## Generation: attacks and training steps (`benchmarks/bench_generation.py`)", "",
             "Same model (Ross MNIST CNN, full width, 150 training steps) and same batch for every "
             f"column; best of {r} interleaved runs after a warm-up (JSMA: 1 run); torch threads = "
             f"{torch.get_num_threads()}. advlegit's attacks also return the success mask and norms (one more "
             "forward pass than the others).", "",
             "| attack | images | advlegit (s) | torchattacks (s) | bare torch loop (s) | speed-up vs torchattacks "
             "| advlegit / bare |",
             "|---|---|---|---|---|---|---|"]
    for name, count, o, t, b in rows:
        vs_bare = "—" if b != b else f"{o / b:.2f}"
        bare = "—" if b != b else f"{b:.3f}"
        lines.append(f"| {name} | {count} | {o:.3f} | {t:.3f} | {bare} | {t / o:.2f}× | {vs_bare} |")
    lines += ["", "| training step (batch 64) | seconds/step | ratio to plain |", "|---|---|---|",
              f"| plain cross-entropy | {plain:.4f} | 1.00 |",
              f"| double backprop (gradreg, y) | {dbp:.4f} | {dbp / plain:.2f} |", "",
              "Targets (issue #2): PGD ≥ 1.5× torchattacks and within 10% of the bare loop; batched JSMA ≥ 10× "
              "torchattacks' per-image JSMA; double-backprop step ≤ 2.5× a plain step."]
    body = "\n".join(lines)
    print(body)
    write_section("bench_generation", body)


if __name__ == "__main__":
    main()
