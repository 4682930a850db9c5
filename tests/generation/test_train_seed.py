"""The same model spec gives the same weights whatever random numbers were drawn before (issue 11)."""
import torch

from advlegit.generation.train import ModelSpec, train_or_load


def test_same_spec_same_weights_after_different_earlier_rng_use(mnist, tmp_path, monkeypatch):
    x, y = mnist["train"]
    x, y = x[:256], y[:256]
    spec = ModelSpec("m", "defended", "normal", {}, "ross_cnn", 0.25, 0.5, steps=3, batch_size=16, lr=1e-3,
                     seed=7, split="train", data={})
    weights = []
    for run, draws in enumerate([0, 1, 1000]):
        monkeypatch.setenv("ADVLEGIT_CACHE_DIR", str(tmp_path / f"cache{run}"))  # never the cached copy
        torch.manual_seed(run)
        torch.rand(draws)
        trained = train_or_load(spec, x, y, 10, torch.device("cpu"))
        assert not trained.cached
        weights.append(trained.model.state_dict())
    for other in weights[1:]:
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])
