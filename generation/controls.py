"""Control twins of adversarial stimuli: the twin's perturbation size without its adversarial structure.

Everything is done in integer 8-bit units (both the source and the adversarial image are on the
8-bit grid), so a control's L2, L-inf (and for flip also L0) equal its twin's exactly, before and
after the PNG is written: there is no quantization step left to lose them.

- flip: the twin's perturbation flipped vertically (Elsayed et al.'s "flip" condition), added to the
  same source. A flip only permutes the perturbation's pixel values, so every norm is kept — unless
  [0,1] clipping cuts a value that lands on a pixel it does not fit (e.g. +0.4 onto a stroke at 1.0,
  or a stroke-darkening value onto the black background). Such a value is swapped with the nearest
  pixel where it fits and whose value fits in its place, which keeps the multiset of values (so the
  norms) exactly; `control.moved_pixels` counts them. If no such pixel exists (large perturbations
  leave few), the horizontal flip and then the 180-degree rotation are tried (`control.transform`);
  if none keeps the norms, the vertical flip is kept clipped and `control.norms_matched` is false.
- noise: k pixels at +-eps (eps = the twin's L-inf) on a random support, signs random among those
  that fit, plus up to four pixels whose squared values make up the rest of the twin's squared L2
  (Lagrange: every integer is a sum of four squares), all below eps. L2 and L-inf equal the twin's;
  L0 does not (it is k + at most 4).
"""
from __future__ import annotations

import logging
import math
from functools import cache

import numpy as np
import torch

from .config import StimuliConfig
from .stimuli import Stimulus, stimulus_norms

log = logging.getLogger(__name__)


def _ints(img: torch.Tensor) -> np.ndarray:
    return np.rint(img.detach().cpu().double().numpy() * 255).astype(np.int64)


FLIPS = {"vertical": lambda d: d[:, ::-1, :], "horizontal": lambda d: d[:, :, ::-1],
         "rotate180": lambda d: d[:, ::-1, ::-1]}


def flip_control(x: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, dict]:
    """The vertical flip; where it cannot keep the norms (a large perturbation leaves no pixel to
    swap with), the horizontal flip, then the 180-degree rotation: also permutations without the
    adversarial structure."""
    for name, transform in FLIPS.items():  # noqa: B007
        delta, moved, matched = flip_delta(x, d, transform)
        if matched:
            break
    else:
        name = "vertical"
        delta, moved, matched = flip_delta(x, d, FLIPS[name])
    return delta, {"method": "flip", "transform": name, "moved_pixels": moved, "norms_matched": matched}


def flip_delta(x: np.ndarray, d: np.ndarray, transform=FLIPS["vertical"]) -> tuple[np.ndarray, int, bool]:
    """(C,H,W) integer source and perturbation -> (flipped perturbation that fits, moved, matched).

    A flipped value that does not fit its pixel (clipping would cut it) is swapped with the nearest
    pixel q where it fits and whose own value fits where it came from: a swap keeps the multiset of
    values, so every norm. Swapped pixels are not moved again."""
    f = transform(d).copy()
    fits = lambda pos, v: 0 <= x[pos] + v <= 255  # noqa: E731
    bad = [tuple(p) for p in np.argwhere((x + f > 255) | (x + f < 0))]
    locked = np.zeros(f.shape, dtype=bool)
    coords = np.argwhere(np.ones(f.shape, dtype=bool))
    matched = True
    # biggest values first: they have the fewest places to go
    for p in sorted(bad, key=lambda p: -abs(int(f[p]))):
        v = int(f[p])
        ok = (~locked & (x + v <= 255) & (x + v >= 0) & (x[p] + f <= 255) & (x[p] + f >= 0)).ravel()
        ok[np.ravel_multi_index(p, f.shape)] = False
        cand = coords[ok]
        if len(cand) == 0:
            f[p] = int(np.clip(x[p] + v, 0, 255) - x[p])   # clipped: norms no longer the twin's
            matched = False
            continue
        q = tuple(cand[np.argmin(((cand - np.array(p)) ** 2).sum(1))])
        f[p], f[q] = f[q], v
        locked[p] = locked[q] = True
    assert not matched or all(fits(tuple(p), int(f[tuple(p)])) for p in np.argwhere(f != 0))
    return f, len(bad), matched


@cache
def four_squares(n: int) -> tuple[int, ...]:
    """Integers a >= b >= c >= d >= 0 with a^2 + b^2 + c^2 + d^2 = n (largest a first)."""
    for a in range(math.isqrt(n), -1, -1):
        r1 = n - a * a
        for b in range(min(a, math.isqrt(r1)), -1, -1):
            r2 = r1 - b * b
            for c in range(min(b, math.isqrt(r2)), -1, -1):
                r3 = r2 - c * c
                e = math.isqrt(r3)
                if e * e == r3 and e <= c:
                    return tuple(v for v in (a, b, c, e) if v)
    raise AssertionError(n)  # unreachable (Lagrange)


def noise_delta(x: np.ndarray, d: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    eps = int(np.abs(d).max())
    total = int((d ** 2).sum())
    out = np.zeros_like(d)
    if eps == 0:
        return out, True
    k, rest = divmod(total, eps * eps)
    magnitudes = [eps] * k + list(four_squares(rest) if rest else ())
    up, down = x + eps <= 255, x - eps >= 0
    usable = np.flatnonzero((up | down).ravel())
    if len(usable) < len(magnitudes):
        magnitudes = magnitudes[:len(usable)]
        matched = False
    else:
        matched = True
    flat_x, flat = x.ravel(), out.ravel()
    for pos, m in zip(rng.choice(usable, size=len(magnitudes), replace=False), magnitudes, strict=True):
        signs = [s for s in (1, -1) if 0 <= flat_x[pos] + s * m <= 255]
        flat[pos] = m * signs[rng.integers(len(signs))]
    return out, matched


def make_controls(stimuli: list[Stimulus], cfg: StimuliConfig) -> list[Stimulus]:
    """One control per adversarial stimulus and configured control, in the order of `cfg.controls`."""
    out: list[Stimulus] = []
    for kind in cfg.controls:
        for n, s in enumerate(stimuli):
            src = s.source.image
            x, d = _ints(src), _ints(s.image) - _ints(src)
            if kind == "flip":
                delta, info = flip_control(x, d)
            else:
                rng = np.random.default_rng([cfg.seed, s.source.index, s.target, n])
                delta, matched = noise_delta(x, d, rng)
                info = {"method": "noise", "norms_matched": matched}
            image = torch.from_numpy((x + delta) / 255.0).to(src.dtype).to(src.device)
            (norms,) = stimulus_norms(src[None], image[None])
            out.append(Stimulus(s.source, s.target, s.defense, image, False, s.budget, norms, dict(s.params),
                                design=s.design, kind=f"control_{kind}", twin=s.id, tag=s.tag, control=info))
    unmatched = [c.id for c in out if not c.control["norms_matched"]]
    if unmatched:
        log.warning("%d of %d controls could not keep their twin's norms (flagged control.norms_matched = "
                    "false): %s", len(unmatched), len(out), ", ".join(unmatched))
    return out
