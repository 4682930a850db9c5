"""Input normalisation as the model's first layer, so everything outside the model (attacks, budgets,
norms, saliency, PNGs) works on [0, 1] pixels, and an epsilon means the same in every channel's units
whatever the data set's statistics (RobustBench's convention)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """(x - mean) / std per channel; mean and std are buffers, so they are saved in (and hashed with)
    the checkpoint."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Normalized(nn.Module):
    """A classifier on [0, 1] pixels: Normalize, then the network. A GAP-head network's CAM interface
    (`feature_maps(x)` on pixels and `linear`) passes through, so CAM saliency and the CAM defenses
    see the same normalised input as the classifier."""

    # Attributes of the wrapped network offered as this model's own (the CAM interface).
    PASSED_THROUGH = ("linear", "features")  # features: Grad-CAM's default layer

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            net = self._modules["net"]
            if name == "feature_maps" and hasattr(net, "feature_maps"):
                return lambda x: net.feature_maps(self.normalize(x))
            if name in self.PASSED_THROUGH and hasattr(net, name):
                return getattr(net, name)
            raise


def normalized(net: nn.Module, mean: Sequence[float], std: Sequence[float], channels: int) -> nn.Module:
    """`net` itself when no normalisation is configured (so checkpoints keep their layout), else
    Normalized; one mean/std value applies to every channel."""
    if not mean:
        return net
    if len(mean) == 1:
        mean, std = list(mean) * channels, list(std) * channels
    if len(mean) != channels:
        raise ValueError(f"data.mean / data.std have {len(mean)} values but the images have {channels} channels")
    return Normalized(net, mean, std)
