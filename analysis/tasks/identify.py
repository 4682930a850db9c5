"""identify: P(target named | defense), logistic models, rater agreement (analysis/identify.py and
pipeline.analyse_identify hold the statistics)."""
from advlegit.analysis import pipeline

from .base import AnalysisTask

TASK = AnalysisTask("identify", "target_hit", pipeline.analyse_identify, simulated=True)
