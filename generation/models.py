"""Classifier architectures, selected by name in the config."""
from __future__ import annotations

import torch
from torch import nn


class RossCNN(nn.Module):
    """MNIST CNN of Ross & Doshi-Velez 2018: conv5x5x32 -> pool -> conv5x5x64 -> pool -> FC1024 -> dropout -> FC10."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 width: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        c1, c2, fc = int(32 * width), int(64 * width), int(1024 * width)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * side * side, fc), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class GapCNN(nn.Module):
    """Convolutions -> global average pooling -> linear, so CAM_c = W_c . A is exact (Boopathy et al. 2020).

    Layout of their MNIST "Small" net: conv16 4x4 s2 -> conv32 4x4 s2 -> conv100 7x7 -> GAP -> linear.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 width: float = 1.0, dropout: float = 0.0) -> None:
        super().__init__()
        c1, c2, c3 = int(16 * width), int(32 * width), int(100 * width)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c3, 7, padding=3), nn.ReLU(),
        )
        self.linear = nn.Linear(c3, num_classes)

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
