"""Stimulus designs and controls (issue 11), on two tiny real-digit models: each design's invariant,
per-stimulus attack_params, controls' norms."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from advlegit.generation.config import StimuliConfig
from advlegit.generation.controls import flip_delta, four_squares, make_controls, noise_delta
from advlegit.generation.stimuli import Source, make_stimuli, quantize


@pytest.fixture(scope="module")
def defended(normal_model, mnist, train_tiny):
    return {"normal": normal_model, "other": train_tiny(mnist, "normal", steps=60, seed=3)}


@pytest.fixture(scope="module")
def pairs(mnist):
    x, y = mnist["test"]
    return [(Source(i, quantize(x[i]), int(y[i])), (int(y[i]) + 1) % 10) for i in range(12)]


def cfg(**kw) -> StimuliConfig:
    return StimuliConfig(attack_params={"steps": 5}, **kw)


def by_group(stimuli):
    groups = {}
    for s in stimuli:
        groups.setdefault(s.group, []).append(s)
    return groups


def test_fixed_budget_same_epsilon_and_step_for_every_defense_failures_kept(pairs, defended):
    stimuli, info = make_stimuli(pairs, defended, cfg(design="fixed_budget", epsilons=[0.1, 0.3]))
    assert info["design"] == "fixed_budget" and "estimand" in info
    assert len(stimuli) == len(pairs) * 2 * 2  # kept whether or not the attack succeeded
    assert not all(s.success for s in stimuli)
    for group in by_group(stimuli).values():
        assert sorted(s.defense for s in group) == ["normal", "other"]
        assert len({(s.budget, s.params["epsilon"], s.params["step_size"]) for s in group}) == 1
    for s in stimuli:
        assert s.params == {"epsilon": s.budget, "step_size": pytest.approx(2.5 * s.budget / 5), "steps": 5,
                            "norm": "linf", "seed": 0}
        assert s.norms["linf"] <= s.budget + 1e-9
        assert s.id.endswith(f"-e{s.budget:g}") and s.group.endswith(f"-e{s.budget:g}")


def test_minimal_records_each_stimulus_own_budget_and_step(pairs, defended):
    stimuli, _ = make_stimuli(pairs, defended, cfg(design="minimal", resolution=0.01))
    assert len({s.budget for s in stimuli}) > 2  # per stimulus, not one config default
    for s in stimuli:
        assert s.params["epsilon"] == s.budget and s.params["step_size"] == pytest.approx(2.5 * s.budget / 5)
        assert s.norms["linf"] <= s.budget + 1e-9
        if not s.success:
            assert s.budget == 0.5  # failures: made (and kept) at max_budget


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_matched_norm_equal_norms_within_each_group(pairs, defended, norm):
    stimuli, info = make_stimuli(pairs, defended, cfg(design="matched_norm", norm=norm, resolution=0.02))
    assert info["norm"] == norm and info["tolerance"] == 0.02
    assert info["groups_matched"] + len(info["groups_dropped"]) == info["groups_total"] == len(pairs)
    assert info["groups_matched"] >= len(pairs) - 2
    groups = by_group(stimuli)
    assert len(groups) == info["groups_matched"] and not set(groups) & set(info["groups_dropped"])
    for group in groups.values():
        assert len(group) == 2 and len({s.budget for s in group}) == 1
        target = group[0].params["matched_value"]   # the group's largest norm before rescaling
        assert all(s.params["matched_value"] == target for s in group)
        assert all(abs(s.norms[norm] / target - 1) <= 0.02 for s in group)
        assert min(abs(s.norms[norm] - target) for s in group) <= 1e-5  # one defense defines it
        assert all(s.params["rescale"] >= 1 for s in group)


def test_ross_is_iterated_tgsm_without_an_epsilon_ball(pairs, defended):
    stimuli, info = make_stimuli(pairs, defended, StimuliConfig(design="ross"))
    assert info["steps"] == 10 and info["step_size"] == 0.1
    assert max(s.norms["linf"] for s in stimuli) > 0.5  # beyond any usual epsilon
    for s in stimuli:
        assert s.budget is None
        assert s.params == {"epsilon": None, "step_size": 0.1, "steps": 10, "norm": "linf", "projection": "none",
                            "seed": 0}


def test_controls_have_their_twins_norms(pairs, defended):
    stimuli, _ = make_stimuli(pairs, defended, cfg(design="fixed_budget", epsilons=[0.3], controls=["flip", "noise"]))
    adversarial = {s.id: s for s in stimuli if s.kind == "adversarial"}
    controls = [s for s in stimuli if s.kind != "adversarial"]
    assert len(controls) == 2 * len(adversarial)
    for c in controls:
        twin = adversarial[c.twin]
        assert c.id == f"{twin.id}-{c.kind.removeprefix('control_')}"
        assert (c.defense, c.group, c.budget, c.target) == (twin.defense, twin.group, twin.budget, twin.target)
        assert c.control["norms_matched"]
        for k in ("l2", "linf"):
            assert abs(c.norms[k] - twin.norms[k]) <= 1e-6
        if c.kind == "control_flip":
            assert c.norms["l0"] == twin.norms["l0"]
        img = c.image.numpy()
        assert img.min() >= 0 and img.max() <= 1 and np.allclose(img * 255, np.rint(img * 255), atol=1e-4)
        assert not torch.equal(c.image, twin.image)


def test_flip_swaps_values_that_clipping_would_cut():
    x = np.zeros((1, 4, 4), dtype=np.int64)
    x[0, 3, :] = 255                       # a bright bottom row
    d = np.zeros_like(x)
    d[0, 0, 1] = 100                       # +100 at the top lands on the bright row when flipped
    d[0, 3, 2] = -50                       # -50 on the bright row lands on the black top row
    f, moved, matched = flip_delta(x, d)
    assert matched and moved == 2
    assert sorted(f.ravel()) == sorted(d.ravel())
    assert ((x + f) >= 0).all() and ((x + f) <= 255).all()


def test_noise_matches_l2_and_linf_exactly_in_8_bit_units():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(1, 28, 28))
    d = np.clip(x + rng.integers(-40, 41, size=x.shape), 0, 255) - x
    n, matched = noise_delta(x, d, np.random.default_rng(1))
    assert matched and np.abs(n).max() == np.abs(d).max() and (n ** 2).sum() == (d ** 2).sum()
    assert ((x + n) >= 0).all() and ((x + n) <= 255).all()
    for k in (0, 1, 7, 12345, 65024):
        assert sum(v * v for v in four_squares(k)) == k and len(four_squares(k)) <= 4


def test_no_controls_by_default(pairs, defended):
    stimuli, _ = make_stimuli(pairs[:2], defended, cfg(design="fixed_budget"))
    assert {s.kind for s in stimuli} == {"adversarial"} and all(s.twin is None for s in stimuli)
    assert make_controls(stimuli, cfg()) == []
