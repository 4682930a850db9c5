"""The words the allocator and the task plugins plan trials with (no database, no Flask): what a
fillable slot is, a clean digit, one planned trial, and the cell a stimulus belongs to."""
from __future__ import annotations

from dataclasses import dataclass


class AllocationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Item:
    """One fillable slot kind: an adversarial image (identify/rate) or a matched pair (compare)."""

    key: str
    cell: tuple[str, ...]
    source: str
    image: str
    image_b: str | None
    prompt_label: int


@dataclass(frozen=True)
class Clean:
    key: str
    label: int


@dataclass
class TrialSpec:
    kind: str
    image: str
    image_b: str | None = None
    prompt_label: int | None = None
    expected: str | None = None
    item: str | None = None


def cell_of(kind: str, defenses: tuple[str, ...]) -> tuple[str, ...]:
    """A cell: the defense (compare: the defense pair), plus the kind unless it is adversarial — so a
    control of defense D is a different cell from D's adversarial images, and old cells keep their names."""
    return defenses if kind == "adversarial" else defenses + (kind,)


def kind_of(image) -> str:
    return image.stimulus_kind or "adversarial"  # rows imported before controls existed
