"""Classifier architectures, selected by name in the config.

Every architecture takes the same keyword arguments (in_channels, num_classes, image_size, width,
dropout, batch_norm) so a config can swap them; the RGB ones also take the per-channel `mean` and
`std` of an input normalization that runs inside the model, so attacks stay in [0, 1] pixel space.
Architectures with a global-average-pooling head expose `feature_maps(x)` and `linear` (CAM).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


class InputNormalization(nn.Module):
    """(x - mean) / std per channel; the identity when neither is given.

    The buffers are not persistent: they come from the config, not the checkpoint, so a state_dict
    written without them (RobustBench's, most people's) loads strictly.
    """

    def __init__(self, channels: int, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        super().__init__()
        mean = [0.0] * channels if mean is None else list(mean)
        std = [1.0] * channels if std is None else list(std)
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"input normalization needs one mean and one std per channel ({channels}); "
                             f"got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"input normalization: every std must be positive, got {std}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _no_batch_norm(architecture: str, batch_norm: bool) -> None:
    if batch_norm:
        raise ValueError(f"{architecture} has no batch-norm option (its paper's net has none)")


def _hidden(layer: nn.Module, channels: int, norm: type[nn.Module] | None) -> list[nn.Module]:
    """layer -> [batch norm] -> ReLU, where tf-slim's normalizer_fn puts it."""
    if norm is None:
        return [layer, nn.ReLU()]
    return [layer, norm(channels, momentum=0.1), nn.ReLU()]  # slim's decay 0.9 = momentum 0.1


class RossCNN(nn.Module):
    """MNIST CNN of Ross & Doshi-Velez 2018: conv5x5x32 -> pool -> conv5x5x64 -> pool -> FC1024 -> dropout -> FC10.

    `batch_norm` adds batch norm after both convolutions and the hidden FC layer, before their
    ReLU (their tf-slim `MNIST_CNN`); the output layer has none, as theirs.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 width: float = 1.0, dropout: float = 0.5, batch_norm: bool = False) -> None:
        super().__init__()
        c1, c2, fc = int(32 * width), int(64 * width), int(1024 * width)
        bias = not batch_norm  # the norm's shift replaces the layer's bias, as in slim
        bn2, bn1 = (nn.BatchNorm2d, nn.BatchNorm1d) if batch_norm else (None, None)
        self.features = nn.Sequential(
            *_hidden(nn.Conv2d(in_channels, c1, 5, padding=2, bias=bias), c1, bn2), nn.MaxPool2d(2),
            *_hidden(nn.Conv2d(c1, c2, 5, padding=2, bias=bias), c2, bn2), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(), *_hidden(nn.Linear(c2 * side * side, fc, bias=bias), fc, bn1), nn.Dropout(dropout),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class GapCNN(nn.Module):
    """Convolutions -> global average pooling -> linear, so CAM_c = W_c . A is exact (Boopathy et al. 2020).

    Layout of their MNIST "Small" net: conv16 4x4 s2 -> conv32 4x4 s2 -> conv100 7x7 -> GAP -> linear,
    as their code: no activation after the last convolution (CAMs are signed) and no bias in the
    head, so logit_c = mean over the cells of CAM_c exactly. `batch_norm` must stay False (their
    net has none); it exists so every architecture takes the same arguments.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 width: float = 1.0, dropout: float = 0.0, batch_norm: bool = False) -> None:
        super().__init__()
        if batch_norm:
            raise ValueError("gap_cnn has no batch-norm option (Boopathy et al.'s net has none)")
        c1, c2, c3 = int(16 * width), int(32 * width), int(100 * width)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c3, 7, padding=3),
        )
        self.linear = nn.Linear(c3, num_classes, bias=False)

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x).mean(dim=(2, 3)))


class SmallNet(nn.Module):
    """Etmann et al. 2019's MNIST SmallNet (cetmann/robustness-interpretability, smallnet.py):
    conv3x3·32 -> pool -> conv3x3·64 -> pool -> conv3x3·128 -> pool -> FC 128 -> dropout 0.5 -> FC.

    Keras' MaxPool2D is "valid": 28 -> 14 -> 7 -> 3, as PyTorch's floor here.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 width: float = 1.0, dropout: float = 0.5, batch_norm: bool = False,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        _no_batch_norm("smallnet", batch_norm)
        c1, c2, c3, fc = (max(1, int(c * width)) for c in (32, 64, 128, 128))
        self.normalize = InputNormalization(in_channels, mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = image_size // 8
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c3 * side * side, fc), nn.ReLU(),
                                        nn.Dropout(dropout), nn.Linear(fc, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


class GapHead(nn.Module):
    """Shared tail of Boopathy et al.'s nets: feature maps -> global average pool -> linear without
    bias, so logit_c = mean over the cells of CAM_c exactly."""

    normalize: nn.Module
    linear: nn.Linear

    def trunk(self, x: torch.Tensor) -> torch.Tensor:  # overridden
        raise NotImplementedError

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.feature_maps(x).mean(dim=(2, 3)))


class PoolGapNet(GapHead):
    """Boopathy et al. 2020's MNIST "Pool" net (AkhilanB/Proper-Interpretability, train.py):
    conv5x5·32 -> maxpool 2 -> ReLU -> conv5x5·64 -> maxpool 2 -> GAP -> linear (no bias).

    Their loop applies the activation to a layer's *input*, so the last conv's output is pooled
    without a ReLU (CAMs stay signed); ReLU after a max pool equals max pool after a ReLU. TF's
    "SAME" pooling rounds up, hence ceil_mode.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 width: float = 1.0, dropout: float = 0.0, batch_norm: bool = False,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        _no_batch_norm("pool_gap", batch_norm)
        c1, c2 = max(1, int(32 * width)), max(1, int(64 * width))
        self.normalize = InputNormalization(in_channels, mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.MaxPool2d(2, ceil_mode=True), nn.ReLU(),
            nn.Conv2d(c1, c2, 5, padding=2), nn.MaxPool2d(2, ceil_mode=True),
        )
        self.linear = nn.Linear(c2, num_classes, bias=False)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class _BoopathyResidual(nn.Module):
    """One block of Boopathy's "WResnet": conv(ReLU(x)) -> conv(ReLU(.)) + shortcut(x), no batch
    norm. A shortcut that changes shape average-pools space and zero-pads channels on both sides,
    as their code; a stride-2 conv pads only right and bottom, as TF's "SAME"."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=0 if stride == 2 else 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.stride, self.extra = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(self.pad(F.relu(x)))))
        short = F.avg_pool2d(x, self.stride) if self.stride > 1 else x
        if self.extra:
            short = F.pad(short, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return out + short


class BoopathyWResNet(GapHead):
    """Boopathy et al. 2020's CIFAR-10 "WResnet" (train.py: filters [16] + 10·[16] + 10·[32] + 10·[64],
    3x3 kernels): a conv, then three stages of five residual blocks (16, 32, 64 channels; the first
    block of stages 2 and 3 has stride 2), no batch norm, GAP, linear without bias."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 width: float = 1.0, dropout: float = 0.0, batch_norm: bool = False,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 blocks_per_stage: int = 5) -> None:
        super().__init__()
        _no_batch_norm("boopathy_wresnet", batch_norm)
        widths = [max(2, int(c * width)) for c in (16, 32, 64)]
        self.normalize = InputNormalization(in_channels, mean, std)
        self.conv = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        blocks, c_in = [], widths[0]
        for stage, c_out in enumerate(widths):
            for b in range(blocks_per_stage):
                blocks.append(_BoopathyResidual(c_in, c_out, 2 if stage > 0 and b == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(c_in, num_classes, bias=False)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.conv(x))


class _WideBasic(nn.Module):
    """Pre-activation block of Zagoruyko & Komodakis' WideResNet, named as RobustBench's
    `BasicBlock` so its state_dicts load unchanged."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.equal = c_in == c_out
        self.convShortcut = None if self.equal else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        return out + (x if self.equal else self.convShortcut(pre))


class _WideGroup(nn.Module):
    def __init__(self, n: int, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[_WideBasic(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WideResNet-depth-k for 32x32 images (Zagoruyko & Komodakis 2016), RobustBench's layout and
    parameter names (`conv1`, `block1..3.layer.i`, `bn1`, `fc`); `width` multiplies k."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 width: float = 1.0, dropout: float = 0.0, batch_norm: bool = False,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 depth: int = 16, widen_factor: int = 4) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"wide_resnet: depth must be 6n + 4, got {depth}")
        n, k = (depth - 4) // 6, widen_factor * width
        c = [16, max(1, int(16 * k)), max(1, int(32 * k)), max(1, int(64 * k))]
        self.normalize = InputNormalization(in_channels, mean, std)
        self.conv1 = nn.Conv2d(in_channels, c[0], 3, padding=1, bias=False)
        self.block1 = _WideGroup(n, c[0], c[1], 1)
        self.block2 = _WideGroup(n, c[1], c[2], 2)
        self.block3 = _WideGroup(n, c[2], c[3], 2)
        self.bn1 = nn.BatchNorm2d(c[3])
        self.relu = nn.ReLU(inplace=False)
        self.fc = nn.Linear(c[3], num_classes)

    @property
    def linear(self) -> nn.Linear:  # the GAP head's name elsewhere (CAM)
        return self.fc

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.normalize(x))
        return self.relu(self.bn1(self.block3(self.block2(self.block1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.feature_maps(x).mean(dim=(2, 3)))


class _ResBasic(nn.Module):
    """ResNet basic block, named as RobustBench's / kuangliu's CIFAR ResNet (`shortcut` = conv + bn)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 images (He et al. 2016, CIFAR stem: one 3x3 conv, no max pool), the
    layout and names of RobustBench's / kuangliu's `ResNet18`; `width` multiplies the channels."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 width: float = 1.0, dropout: float = 0.0, batch_norm: bool = False,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        c = [max(1, int(x * width)) for x in (64, 128, 256, 512)]
        self.normalize = InputNormalization(in_channels, mean, std)
        self.conv1 = nn.Conv2d(in_channels, c[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        c_in, layers = c[0], []
        for i, c_out in enumerate(c):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(_ResBasic(c_in, c_out, stride), _ResBasic(c_out, c_out, 1)))
            c_in = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(c[3], num_classes)

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(out))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.feature_maps(x).mean(dim=(2, 3)))


ARCHITECTURES: dict[str, type[nn.Module] | partial] = {
    "ross_cnn": RossCNN,                  # Ross & Doshi-Velez 2018, MNIST
    "gap_cnn": GapCNN,                    # Boopathy et al. 2020, MNIST/CIFAR "Small"
    "smallnet": SmallNet,                 # Etmann et al. 2019, MNIST
    "pool_gap": PoolGapNet,               # Boopathy et al. 2020, MNIST "Pool"
    "boopathy_wresnet": BoopathyWResNet,  # Boopathy et al. 2020, CIFAR-10 "WResnet"
    "wide_resnet_16_4": partial(WideResNet, depth=16, widen_factor=4),    # a small WideResNet
    "wide_resnet_28_10": partial(WideResNet, depth=28, widen_factor=10),  # RobustBench's "Standard"
    "resnet18": ResNet18,                 # CIFAR ResNet-18
}


def has_gap_head(model: nn.Module) -> bool:
    """Global average pooling then one linear layer: CAM is exact (Boopathy et al.'s defenses)."""
    return hasattr(model, "feature_maps") and isinstance(getattr(model, "linear", None), nn.Linear)


# Architectures whose models have a GAP head, for checking configs before anything is built.
GAP_HEAD_ARCHITECTURES = ("gap_cnn", "pool_gap", "boopathy_wresnet", "wide_resnet_16_4",
                          "wide_resnet_28_10", "resnet18")


def build_model(architecture: str, **kwargs) -> nn.Module:
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}") from None
    for key in ("mean", "std"):  # only the architectures with a normalization layer take them
        if kwargs.get(key) is None:
            kwargs.pop(key, None)
    return cls(**kwargs)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
