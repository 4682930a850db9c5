"""Every architecture in the registry: shapes, gradients, and the parameter counts of the
reference definitions (the papers' code, RobustBench's model zoo)."""
from __future__ import annotations

import pytest
import torch

from advlegit.generation.models import (
    ARCHITECTURES,
    GAP_HEAD_ARCHITECTURES,
    InputNormalization,
    build_model,
    has_gap_head,
    parameter_count,
)
from advlegit.generation.saliency import cam_all_classes

# (architecture, in_channels, image_size) each is meant for; every one must also run on the other.
INPUTS = {"ross_cnn": (1, 28), "gap_cnn": (1, 28), "smallnet": (1, 28), "pool_gap": (1, 28),
          "boopathy_wresnet": (3, 32), "wide_resnet_16_4": (3, 32), "wide_resnet_28_10": (3, 32),
          "resnet18": (3, 32)}

# Counted from the reference definitions by hand (layer by layer in the comments).
REFERENCE_PARAMETERS = {
    # Ross: conv 1*32*25+32 = 832, conv 32*64*25+64 = 51,264, fc 3136*1024+1024, fc 1024*10+10
    ("ross_cnn", 1, 28, 10): 3_274_634,
    # Boopathy "Small": 1*16*16+16 = 272, 16*32*16+32 = 8,224, 32*100*49+100 = 156,900, head 100*10
    ("gap_cnn", 1, 28, 10): 166_396,
    # Etmann smallnet.py: 320 + 18,496 + 73,856 + (3*3*128)*128+128 = 147,584 + 1,290
    ("smallnet", 1, 28, 10): 241_546,
    # Boopathy "Pool": 1*32*25+32 = 832, 32*64*25+64 = 51,264, head 64*10 = 640
    ("pool_gap", 1, 28, 10): 52_736,
    # Boopathy "WResnet": 448 + 10*2,320 + 4,640 + 9*9,248 + 18,496 + 9*36,928 + 640
    ("boopathy_wresnet", 3, 32, 10): 463_008,
    # RobustBench cifar10 Linf "Standard" (WideResNet-28-10): 36.5M
    ("wide_resnet_28_10", 3, 32, 10): 36_479_194,
    # WideResNet-16-4 (Zagoruyko & Komodakis table: 2.7M)
    ("wide_resnet_16_4", 3, 32, 10): 2_748_890,
    # kuangliu / RobustBench ResNet18: 11.17M
    ("resnet18", 3, 32, 10): 11_173_962,
}


def test_every_architecture_has_a_reference_count():
    assert set(INPUTS) == set(ARCHITECTURES) == {a for a, *_ in REFERENCE_PARAMETERS}


@pytest.mark.parametrize("key", sorted(REFERENCE_PARAMETERS))
def test_parameter_count_matches_the_reference(key):
    arch, channels, size, classes = key
    assert parameter_count(build_model(arch, in_channels=channels, image_size=size,
                                       num_classes=classes)) == REFERENCE_PARAMETERS[key]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_forward_shape_and_input_gradient(arch, channels, size):
    torch.manual_seed(0)
    # narrow, so the big ones stay cheap; the counts above are at width 1
    model = build_model(arch, in_channels=channels, image_size=size, num_classes=7,
                        width=0.125 if "resnet" in arch else 0.25).eval()
    x = torch.rand(2, channels, size, size, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 7)
    (grad,) = torch.autograd.grad(out[:, 3].sum(), x)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters()), "a parameter takes no part in the output"


@pytest.mark.parametrize("arch", GAP_HEAD_ARCHITECTURES)
def test_gap_head_logits_are_the_mean_cam_plus_bias(arch):
    channels, size = INPUTS[arch]
    model = build_model(arch, in_channels=channels, image_size=size, width=0.125).double().eval()
    assert has_gap_head(model)
    cams, logits = cam_all_classes(model, torch.rand(2, channels, size, size, dtype=torch.double))
    bias = model.linear.bias if model.linear.bias is not None else 0.0
    torch.testing.assert_close(cams.mean(dim=(2, 3)) + bias, logits)


@pytest.mark.parametrize("arch", ["pool_gap", "boopathy_wresnet"])
def test_boopathys_nets_have_signed_cams_and_no_head_bias(arch):
    channels, size = INPUTS[arch]
    model = build_model(arch, in_channels=channels, image_size=size).eval()
    assert model.linear.bias is None
    assert (model.feature_maps(torch.rand(4, channels, size, size)) < 0).any()  # no ReLU at the end


@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if a not in ("ross_cnn", "gap_cnn")])
def test_normalization_runs_inside_the_model(arch):
    channels, size = INPUTS[arch]
    mean, std = [0.4] * channels, [0.2] * channels
    torch.manual_seed(0)
    plain = build_model(arch, in_channels=channels, image_size=size, width=0.125).eval()
    torch.manual_seed(0)
    normed = build_model(arch, in_channels=channels, image_size=size, width=0.125, mean=mean, std=std).eval()
    x = torch.rand(2, channels, size, size)
    torch.testing.assert_close(normed(x), plain((x - 0.4) / 0.2))
    # the normalization is the config's, not the checkpoint's: state_dicts without it load strictly
    assert set(normed.state_dict()) == set(plain.state_dict())


def test_normalization_needs_a_value_per_channel():
    with pytest.raises(ValueError, match="one mean and one std per channel"):
        InputNormalization(3, [0.5], [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="positive"):
        InputNormalization(1, [0.5], [0.0])


def test_state_dict_names_follow_robustbench():
    wrn = build_model("wide_resnet_16_4").state_dict()
    assert {"conv1.weight", "block1.layer.0.bn1.running_mean", "block2.layer.0.convShortcut.weight",
            "bn1.weight", "fc.weight", "fc.bias"} <= set(wrn)
    rn = build_model("resnet18").state_dict()
    assert {"conv1.weight", "bn1.weight", "layer2.0.shortcut.0.weight", "layer4.1.bn2.bias",
            "linear.weight"} <= set(rn)


@pytest.mark.parametrize("arch", ["smallnet", "pool_gap", "boopathy_wresnet"])
def test_papers_without_batch_norm_refuse_it(arch):
    with pytest.raises(ValueError, match="no batch-norm"):
        build_model(arch, batch_norm=True)
