"""What a task type is, as the analysis needs it: one module per task in analysis/tasks/, one
registry line in analysis/tasks/__init__.py. A task says what its primary outcome is and how its
responses become its report section (its frame, primary test and tables); the export columns it needs
are listed once, in analysis/schema.REQUIRED_BY_TASK. pipeline.run_analysis asks the registry and never
branches on a task's name."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.results import Section

# (this task's rows after exclusions, options, figure folder, R usable, stimulus design) ->
# (its report section, its summary: "primary"/"rates"/"reference" keyed by task, optional "extra_sections", and
# "models": the analysis.models.ModelResult objects its primary and mixed tables came from, which the
# Python API returns too)
Analyse = Callable[[pd.DataFrame, AnalysisConfig, Path, bool, str], tuple[Section, dict]]


@dataclass(frozen=True)
class AnalysisTask:
    name: str  # a contracts.vocabularies.TaskType value
    primary_outcome: str  # the export column its primary test is about (contracts.analysis_options.TASK_OUTCOMES)
    analyse: Analyse
    simulated: bool = False  # analysis/simulate.py can make synthetic exports of it (power, tests)
