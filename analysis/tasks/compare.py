"""compare: 2AFC between two defenses' images (analysis/compare.py and pipeline.analyse_compare)."""
from advlegit.analysis import pipeline

from .base import AnalysisTask


def _analyse(d, cfg, figdir, r_ok, design):
    return pipeline.analyse_compare(d, cfg, figdir, design)  # no R cross-check for the choice models


TASK = AnalysisTask("compare", "chosen_defense", _analyse, simulated=True)
