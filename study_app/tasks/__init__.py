"""Task types as plugins: one module per task in this folder, one line per task in TASKS.

Adding a task type: a member in contracts/vocabularies.TaskType, a module here (a SingleImage or
ImagePair subclass, see base.py), its line below, and its renderer in static/js/tasks/<name>.js.
The suites in tests/ run over TASKS, so the new task is tested by them as it stands.
"""
from __future__ import annotations

from advlegit.contracts.vocabularies import TaskType

from . import compare, explain, explain_pair, identify, rate
from .base import ImagePair, SingleImage, Task, article, label_name, with_article  # noqa: F401  (the plugin API)

TASKS: dict[str, Task] = {
    TaskType.IDENTIFY: identify.TASK,
    TaskType.RATE: rate.TASK,
    TaskType.COMPARE: compare.TASK,
    TaskType.EXPLAIN: explain.TASK,
    TaskType.EXPLAIN_PAIR: explain_pair.TASK,
}

# Every outcome column some task fills; an answer leaves the other tasks' columns empty.
OUTCOME_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(c for t in TASKS.values() for c in t.outcome_columns))


def task_of(name: str) -> Task:
    """The plugin of a study's task_type (stored studies only hold names TASKS knows)."""
    return TASKS[name]


# Shorthands by task name, for callers that hold the study's task_type string.
def prompt(task: str, trial, classes: list[str]) -> str:
    return TASKS[task].prompt(trial, classes)


def feedback(task: str, trial, classes: list[str]) -> str | None:
    return TASKS[task].feedback(trial, classes)


def attention_passed(task: str, trial, response: str) -> bool:
    return TASKS[task].attention_passed(trial, response)
