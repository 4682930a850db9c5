"""Column names and types of the export (docs/export.md, contract 2)."""
from __future__ import annotations

TASK_TYPES = ("identify", "rate", "compare")
TRIAL_KINDS = ("practice", "main", "attention_check")
PARTICIPANT_STATES = (
    "entered", "consented", "instructed", "in_task", "data_complete", "code_issued",
    "returned", "timed_out", "excluded",
)

STR_COLUMNS = (
    "response_uuid", "study_id", "participant_id", "participant_state", "participant_review",
    "task_type", "trial_kind", "stimulus_id", "stimulus_id_b", "group", "source_id", "defense",
    "defense_b", "attack", "attack_params", "response", "chosen_side", "chosen_defense",
    "shown_at", "answered_at", "received_at", "manifest_sha256", "stimulus_set",
)
INT_COLUMNS = ("trial_index", "source_index", "true_label", "target_label", "response_label", "rating")
FLOAT_COLUMNS = (
    "budget", "norm_l2", "norm_linf", "norm_l0", "norm_l2_b", "norm_linf_b", "norm_l0_b", "rt_ms",
    "screen_width", "screen_height", "viewport_width", "viewport_height", "device_pixel_ratio",
)
BOOL_COLUMNS = ("attack_success", "target_hit", "original_hit", "is_attention_check", "attention_passed")

# Every export column in documented order (model_<name>_* columns are appended per model).
EXPORT_COLUMNS = (
    "response_uuid", "study_id", "participant_id", "participant_state", "participant_review",
    "task_type", "trial_index", "trial_kind", "stimulus_id", "stimulus_id_b", "group", "source_id",
    "source_index", "true_label", "target_label", "defense", "defense_b", "attack", "attack_params",
    "budget", "norm_l2", "norm_linf", "norm_l0", "norm_l2_b", "norm_linf_b", "norm_l0_b",
    "attack_success", "response", "response_label", "rating", "chosen_side", "chosen_defense",
    "target_hit", "original_hit", "is_attention_check", "attention_passed", "rt_ms", "shown_at",
    "answered_at", "received_at", "screen_width", "screen_height", "viewport_width",
    "viewport_height", "device_pixel_ratio", "manifest_sha256", "stimulus_set",
)

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
}


def model_label_columns(columns) -> dict[str, str]:
    """{model name: column} for every `model_<name>_label` column (left image)."""
    out = {}
    for c in columns:
        if c.startswith("model_") and c.endswith("_label") and not c.endswith("_label_b"):
            out[c[len("model_"):-len("_label")]] = c
    return out
