"""Column names and types of the export (docs/export.md, contract 2), read from contracts/export.py
so that what the study app writes and what the analysis expects can never drift apart."""
from __future__ import annotations

from advlegit.contracts.export import (  # noqa: F401  (re-exported: the analysis modules import them from here)
    COLUMN_NAMES,
    COLUMNS,
    TASK_TYPES,
    TRIAL_KINDS,
    names,
)

STR_COLUMNS = names(COLUMNS, "str")
INT_COLUMNS = names(COLUMNS, "int")
FLOAT_COLUMNS = names(COLUMNS, "float")
BOOL_COLUMNS = names(COLUMNS, "bool")

# Every export column in documented order (model_<name>_* columns come per model, after the
# stimulus columns and before the response columns).
EXPORT_COLUMNS = COLUMN_NAMES

# What the analysis cannot run without, for every export ...
REQUIRED_ALWAYS = (
    "participant_id", "participant_state", "participant_review", "task_type", "trial_kind",
    "stimulus_id", "defense", "is_attention_check", "attention_passed", "rt_ms",
)
# ... and for each task type present in it.
REQUIRED_BY_TASK = {
    "identify": ("target_hit", "original_hit", "response", "response_label"),
    "rate": ("rating",),
    "compare": ("stimulus_id_b", "defense_b", "chosen_side", "chosen_defense"),
    "explain": ("rating",),
    "explain_pair": ("stimulus_id_b", "defense_b", "chosen_side", "chosen_defense"),
}


def model_label_columns(columns) -> dict[str, str]:
    """{model name: column} for every `model_<name>_label` column (left image)."""
    out = {}
    for c in columns:
        if c.startswith("model_") and c.endswith("_label") and not c.endswith("_label_b"):
            out[c[len("model_"):-len("_label")]] = c
    return out
