"""Classifier architectures, selected by name in the config."""
from __future__ import annotations

import torch
from torch import nn


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


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "ross_cnn": RossCNN,
    "gap_cnn": GapCNN,
}


def build_model(architecture: str, **kwargs) -> nn.Module:
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}") from None
    return cls(**kwargs)
