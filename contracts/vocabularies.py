"""The words both sides of contract 2 use, as str-valued enums: a member *is* its string
(`TaskType.RATE == "rate"`, `json.dumps`, SQL and CSV see "rate"), so the database and the export hold
the same values as before the enums. Imports nothing of the project.

A new task type starts here (one member), then gets one module per side (study_app/tasks/,
analysis) and one renderer (study_app/static/js/tasks/); tests/test_contracts.py fails until both
registries know it.
"""
from __future__ import annotations

from enum import StrEnum


class TaskType(StrEnum):
    IDENTIFY = "identify"  # name the digit (0-9 or "not a digit")
    RATE = "rate"  # how much does it look like class c (1-7)
    COMPARE = "compare"  # which of two images looks more like class c (2AFC)
    EXPLAIN = "explain"  # how well does a model's saliency map explain the digit beside it (1-7)
    EXPLAIN_PAIR = "explain_pair"  # which of two models' saliency maps shows the digit better (2AFC)


class TrialKind(StrEnum):
    PRACTICE = "practice"
    MAIN = "main"
    ATTENTION_CHECK = "attention_check"


class ParticipantState(StrEnum):
    """The server-side state machine (study_app/states.py holds its allowed transitions)."""

    ENTERED = "entered"
    CONSENTED = "consented"
    INSTRUCTED = "instructed"
    IN_TASK = "in_task"
    DATA_COMPLETE = "data_complete"
    CODE_ISSUED = "code_issued"
    RETURNED = "returned"
    TIMED_OUT = "timed_out"
    EXCLUDED = "excluded"


class ReviewMark(StrEnum):
    NONE = ""  # not reviewed yet
    APPROVED = "approved"
    REJECTED = "rejected"
    EXCLUDED = "excluded"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The plain strings, in declaration order (what older code compared tuples against)."""
    return tuple(m.value for m in enum)
