"""Statistics for advlegit exports: exclusions, tests, agreement, power, reports.

Reads the tidy export (docs/export.md, contract 2); never imports Flask or torch. The names below are
the public API for scripts and notebooks (docs/api.md); `advlegit analyze` builds its report from the
same results objects.
"""
from advlegit.analysis.errors import AnalysisError

_API = ("load_export", "make_config", "apply_exclusions", "analyse", "fit_task", "fit_identify", "fit_rate",
        "fit_compare", "fit_explain", "fit_explain_pair", "StudyResult", "TaskResult", "ModelResult",
        "ExclusionResult", "TIDY_COLUMNS")

__all__ = ["AnalysisError", *_API]


def __getattr__(name: str):
    # loaded on first use, so `import analysis` (the CLI, the study app's checks) stays light
    if name in _API:
        from advlegit.analysis import api
        return getattr(api, name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
