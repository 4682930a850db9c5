"""The analysis' task registry: one module per task type in this folder, one line below.

Adding a task type (docs/analysis.md, "How to add a task"): its member in contracts/vocabularies.TaskType
and its outcome in contracts/analysis_options.TASK_OUTCOMES, a module here whose TASK says which columns
it needs and how its rows become its report section, and its line below. tests/test_contracts.py fails
until the study app's registry (study_app/tasks) and this one both know every TaskType.

Import order: the task modules use analysis.pipeline's statistics, and pipeline imports this registry
only inside run_analysis, so either may be imported first.
"""
from __future__ import annotations

from advlegit.contracts.vocabularies import TaskType

from . import compare, explain, explain_pair, identify, rate
from .base import AnalysisTask

TASKS: dict[str, AnalysisTask] = {
    TaskType.IDENTIFY: identify.TASK,
    TaskType.RATE: rate.TASK,
    TaskType.COMPARE: compare.TASK,
    TaskType.EXPLAIN: explain.TASK,
    TaskType.EXPLAIN_PAIR: explain_pair.TASK,
}
