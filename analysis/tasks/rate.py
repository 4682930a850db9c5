"""rate: 1-7 resemblance to the target class (analysis/rate.py and pipeline.analyse_rate)."""
from advlegit.analysis import pipeline

from .base import AnalysisTask

TASK = AnalysisTask("rate", "rating", pipeline.analyse_rate, simulated=True)
