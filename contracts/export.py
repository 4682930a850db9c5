"""Contract 2, the export (docs/export.md): its columns with their types, and the vocabularies that
`study_app` writes and `analysis` reads. Imports nothing of the project, no Flask, no torch.

The column list is the single source: study_app/export.py writes exactly these columns (plus one pair
per manifest model, and the platform ids on request) and analysis/schema.py reads its names from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import stimulus_set as _set
from .vocabularies import ParticipantState, ReviewMark, TaskType, TrialKind, values

DType = Literal["str", "int", "float", "bool"]

# Vocabularies (the values a column may hold): the enums of contracts/vocabularies.py as plain tuples.
TASK_TYPES = values(TaskType)
TRIAL_KINDS = values(TrialKind)
PARTICIPANT_STATES = values(ParticipantState)
REVIEW_MARKS = values(ReviewMark)
# What an image is (stimulus_kind): a generated stimulus (adversarial or one of its controls) or a clean
# source digit; and how the set chose perturbation sizes (stimulus_design). Both are contract 1's words.
IMAGE_KINDS = _set.KINDS
STIMULUS_KINDS = _set.STIMULUS_KINDS
STIMULUS_DESIGNS = _set.DESIGNS


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType


def _cols(dtype: DType, *names: str) -> list[Column]:
    return [Column(n, dtype) for n in names]


# Every fixed export column, in file order. Per-model columns go between BASE and RESPONSE.
BASE: tuple[Column, ...] = tuple(
    _cols("str", "response_uuid", "study_id", "participant_id", "participant_state", "participant_review")
    # true for participants created by `advlegit bots` (simulated data, never a person)
    + _cols("bool", "simulated")
    # per participant, repeated on each of their rows (server clock, from their state transitions):
    # instructions page shown -> Start pressed, and Start -> their last response received
    + _cols("float", "instructions_ms", "session_ms")
    + _cols("str", "task_type")
    + _cols("int", "trial_index")
    + _cols("str", "trial_kind", "stimulus_id", "stimulus_id_b",
            # adversarial | control_flip | control_noise | clean, and the adversarial image a control copies
            "stimulus_kind", "stimulus_kind_b", "twin_stimulus_id", "twin_stimulus_id_b",
            "group", "source_id")
    + _cols("int", "source_index", "true_label", "target_label", "prompt_label")
    + _cols("str", "defense", "defense_b", "attack", "attack_params")
    + _cols("float", "budget", "norm_l2", "norm_linf", "norm_l0", "norm_l2_b", "norm_linf_b", "norm_l0_b")
    + _cols("bool", "attack_success")
    + _cols("str", "stimulus_design")
)
RESPONSE: tuple[Column, ...] = tuple(
    _cols("str", "response")
    + _cols("int", "response_label", "rating")
    + _cols("str", "chosen_side", "chosen_defense")
    + _cols("bool", "target_hit", "original_hit", "is_attention_check", "attention_passed")
    + _cols("float", "rt_ms")
    + _cols("str", "shown_at", "answered_at", "received_at")
    # numbers; float because they may be empty (pandas has no NA for plain int)
    + _cols("float", "screen_width", "screen_height", "viewport_width", "viewport_height", "device_pixel_ratio")
    # The presentation protocol ([presentation]): what the browser measured. Empty where it does not apply
    # (an untimed exposure has no measured duration, a study without a window no time-outs).
    + _cols("float", "refresh_hz")
    + _cols("int", "exposure_ms_requested")
    + _cols("float", "exposure_ms_measured", "mask_ms_measured")
    + _cols("int", "dropped_frames")
    + _cols("bool", "exposure_missed", "response_timed_out")
    + _cols("int", "confidence")
    + _cols("bool", "focus_lost")
    + _cols("int", "fullscreen_exits")
    + _cols("str", "manifest_sha256", "stimulus_set", "design_sha256")
)
# Identifying: only with --include-platform-ids / ?platform_ids=1, never by default.
PLATFORM: tuple[Column, ...] = tuple(_cols("str", "platform", "platform_pid", "platform_session"))

COLUMNS: tuple[Column, ...] = BASE + RESPONSE  # the fixed columns of every export
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
DTYPES: dict[str, DType] = {c.name: c.dtype for c in COLUMNS + PLATFORM}


def names(cols: tuple[Column, ...], dtype: DType | None = None) -> tuple[str, ...]:
    return tuple(c.name for c in cols if dtype is None or c.dtype == dtype)


def model_columns(model_names: list[str]) -> list[Column]:
    """Every manifest model's prediction on the (left) image, then the same for the right image (`_b`)."""
    left = [col for m in model_names
            for col in (Column(f"model_{m}_label", "int"), Column(f"model_{m}_confidence", "float"))]
    return left + [Column(c.name + "_b", c.dtype) for c in left]


def export_columns(model_names: list[str], include_platform_ids: bool = False) -> list[Column]:
    """The header of one export, in order."""
    cols = list(BASE) + model_columns(model_names) + list(RESPONSE)
    return cols + (list(PLATFORM) if include_platform_ids else [])


def dtype_of(name: str) -> DType | None:
    """A column's type, per-model columns included; None for a name the contract does not know."""
    if name in DTYPES:
        return DTYPES[name]
    if name.startswith("model_"):
        base = name[:-2] if name.endswith("_b") else name
        if base.endswith("_label"):
            return "int"
        if base.endswith("_confidence"):
            return "float"
    return None
