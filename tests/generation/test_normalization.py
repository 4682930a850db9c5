"""RGB end to end in the model: normalisation is the model's first layer (data.mean / data.std), so
every attack and saliency method works on [0, 1] pixels of 3-channel images, and the budgets mean pixels."""
from __future__ import annotations

import pytest
import torch

from advlegit.generation.attacks import ATTACKS
from advlegit.generation.config import DataConfig, GenerationConfig
from advlegit.generation.models import build_model
from advlegit.generation.normalization import Normalize, Normalized, normalized
from advlegit.generation.saliency import METHODS
from advlegit.generation.saliency_images import applies, channel_max_abs, display_maps
from advlegit.generation.train import model_specs, new_model

MEAN, STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
LINF = {"fgsm", "tgsm", "tgsm_iterative", "pgd_linf"}
FAST = {"tgsm_iterative": {"steps": 3}, "pgd_linf": {"steps": 3}, "pgd_l2": {"steps": 3}, "deepfool": {"steps": 3},
        "jsma": {"gamma": 0.05}, "cw_l2": {"steps": 3, "binary_search_steps": 1}}


def _model(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model(arch, in_channels=3, num_classes=10, image_size=8, width=0.25, dropout=0.0)
    return Normalized(net, MEAN, STD).eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 8, 8, generator=g), torch.tensor([0, 1, 2])


def test_the_layer_is_the_per_channel_standardisation_and_travels_in_the_checkpoint(images):
    x, _ = images
    model = _model("ross_cnn")
    expected = model.net((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
    torch.testing.assert_close(model(x), expected)
    state = model.state_dict()
    torch.testing.assert_close(state["normalize.std"].flatten(), torch.tensor(STD))
    assert normalized(model.net, [], [], 3) is model.net          # none configured: the layout is unchanged
    assert isinstance(normalized(model.net, [0.5], [0.2], 3).normalize, Normalize)  # one value for all channels
    with pytest.raises(ValueError, match="2 values but the images have 3"):
        normalized(model.net, [0.5, 0.5], [0.2, 0.2], 3)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_works_in_pixel_space_on_colour_images(images, name):
    x, y = images
    params = FAST.get(name, {}) | ({"epsilon": 0.05} if name in LINF else {})
    res = ATTACKS[name](_model("ross_cnn"), x, y, target=(y + 1) % 10, **params)
    assert res.images.shape == x.shape
    assert res.images.min() >= 0 and res.images.max() <= 1
    if name in LINF:  # the budget is in [0, 1] pixel units whatever the channel statistics
        assert float((res.images - x).abs().max()) <= 0.05 + 1e-6


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("arch", ["ross_cnn", "gap_cnn"])
def test_every_saliency_method_draws_one_map_per_colour_image(images, method, arch):
    x, _ = images
    model = _model(arch)
    if not applies(method, model):
        pytest.skip(f"{method} needs a GAP head")
    maps = display_maps(model, x, method, ig_steps=4)
    assert maps.shape == (3, 8, 8) and maps.min() >= 0 and maps.max() <= 1 + 1e-6


def test_channels_aggregate_by_largest_magnitude():
    a = torch.tensor([[[[1.0]], [[-3.0]], [[2.0]]]])        # one pixel, three channels
    assert channel_max_abs(a).item() == 3.0
    assert channel_max_abs(a[:, :1]).item() == 1.0          # grayscale: the |attribution| itself


def test_the_config_s_normalisation_builds_into_every_model_and_its_cache_key():
    plain, norm = (GenerationConfig(data=DataConfig(mean=m, std=s)) for m, s in (([], []), (MEAN, STD)))
    spec_plain, spec_norm = model_specs(plain, "f" * 64)[0], model_specs(norm, "f" * 64)[0]
    assert spec_plain.key() != spec_norm.key()
    assert not isinstance(new_model(spec_plain, (3, 32, 32), 10), Normalized)
    assert isinstance(new_model(spec_norm, (3, 32, 32), 10), Normalized)
