"""Statistics for advlegit exports: exclusions, tests, agreement, power, reports.

Reads the tidy export (docs/export.md, contract 2); never imports Flask or torch.
"""
from analysis.errors import AnalysisError

__all__ = ["AnalysisError"]
