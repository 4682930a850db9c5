"""The analysis for scripts and notebooks: load an export, apply the pre-registered exclusions, fit each
task's primary and mixed model. `advlegit analyze` builds its report from the same ModelResult objects
(analysis/models.py), so a notebook and a report cannot disagree."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from advlegit.analysis import designs, load, models
from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.errors import AnalysisError
from advlegit.analysis.exclusions import ExclusionResult
from advlegit.analysis.exclusions import apply_exclusions as _apply_exclusions
from advlegit.analysis.models import TIDY_COLUMNS, ModelResult
from advlegit.contracts.validation import build

__all__ = ["load_export", "make_config", "apply_exclusions", "fit_task", "fit_identify", "fit_rate", "fit_compare",
           "fit_explain", "fit_explain_pair", "analyse", "TaskResult", "StudyResult", "ModelResult",
           "ExclusionResult", "TIDY_COLUMNS"]


def load_export(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Load and validate an export: a CSV or JSON-lines file, or a DataFrame of its columns.

    The columns are typed and checked against the export contract (docs/export.md); optional columns
    an older export lacks are added empty.

    Parameters
    ----------
    source : str, pathlib.Path or pandas.DataFrame
        Path to ``export.csv`` / ``export.jsonl`` as written by ``advlegit export``, or a frame with the
        same columns (e.g. read from the database, or simulated by ``advlegit.analysis.simulate``).

    Returns
    -------
    pandas.DataFrame
        One row per response, typed (booleans, integers, floats, strings).

    Raises
    ------
    AnalysisError
        If the file is missing or empty, a required column is absent, or a value has the wrong type;
        the message names the problem.

    Examples
    --------
    >>> from advlegit.analysis import load_export
    >>> df = load_export("export.csv")  # doctest: +SKIP
    >>> df.groupby("task_type").size()  # doctest: +SKIP
    """
    if isinstance(source, pd.DataFrame):
        return load.coerce(source.copy(), source="DataFrame")
    if isinstance(source, (str, Path)):
        return load.read_export(source)
    raise AnalysisError(f"load_export needs a path or a pandas DataFrame, not {type(source).__name__}")


def make_config(config: AnalysisConfig | dict[str, Any] | None = None, **options: Any) -> AnalysisConfig:
    """The analysis options: the report's defaults, a dict of the design's ``[analysis]`` keys, or both.

    Parameters
    ----------
    config : AnalysisConfig or dict, optional
        Options to start from; a dict uses the ``[analysis]`` key names of docs/config-reference.md.
    **options
        Options that override `config` (e.g. ``alpha=0.01``, ``mixed_model=False``).

    Returns
    -------
    AnalysisConfig
        Checked options; a bad value raises AnalysisError naming it.

    Examples
    --------
    >>> from advlegit.analysis import make_config
    >>> cfg = make_config(alpha=0.01, reference_defense="normal")
    >>> cfg.level
    '99%'
    """
    if isinstance(config, AnalysisConfig):
        if not options:
            return config
        values = {k: v for k, v in config.values().items()}
    elif config is None:
        values = {}
    elif isinstance(config, dict):
        values = dict(config)
    else:
        raise AnalysisError(f"config must be an AnalysisConfig or a dict, not {type(config).__name__}")
    values.update(options)
    return build(AnalysisConfig, values, error=AnalysisError)


def apply_exclusions(data: pd.DataFrame, config: AnalysisConfig | dict | None = None,
                     **options: Any) -> ExclusionResult:
    """Apply the pre-registered exclusion rules, in order, before any statistic.

    First the participants the app marked excluded and those who did not finish, then the design's
    ``exclusions`` list (docs/analysis.md); practice and attention-check trials are dropped.

    Parameters
    ----------
    data : pandas.DataFrame
        An export from `load_export`.
    config : AnalysisConfig or dict, optional
        The options (see `make_config`); by default the report's.
    **options
        Options overriding `config`, e.g. ``attention_threshold=0.8``.

    Returns
    -------
    ExclusionResult
        ``.data``: the main-trial rows kept; ``.table``: one row per rule with participants and
        responses removed and left; ``.attention``: attention-check pass rate per participant.

    Examples
    --------
    >>> from advlegit.analysis import apply_exclusions
    >>> ex = apply_exclusions(df, rt_floor_ms=300)  # doctest: +SKIP
    >>> ex.table[["rule", "participants_removed", "responses_left"]]  # doctest: +SKIP
    """
    return _apply_exclusions(data, make_config(config, **options))


@dataclass
class TaskResult:
    """One task's models: the pre-registered primary test and the mixed model.

    Attributes
    ----------
    task : str
        The task type.
    reference : str
        The reference defense.
    primary : ModelResult
        The pre-registered test (Holm within its family).
    secondary : dict of str to ModelResult
        ``{"mixed": ...}`` when mixed models were fitted (``mixed_model = true``).

    Examples
    --------
    >>> res = fit_rate(ex.data)  # doctest: +SKIP
    >>> res.secondary["mixed"].table  # doctest: +SKIP
    """

    task: str
    reference: str
    primary: ModelResult
    secondary: dict[str, ModelResult] = field(default_factory=dict)

    @property
    def models(self) -> list[ModelResult]:
        """The primary model, then the secondary ones."""
        return [self.primary, *self.secondary.values()]

    @property
    def table(self) -> pd.DataFrame:
        """Every model's rows in one tidy frame (columns `TIDY_COLUMNS`)."""
        return pd.concat([m.table for m in self.models], ignore_index=True)

    def summary(self) -> str:
        """Every model's summary, primary first.

        Examples
        --------
        >>> print(fit_identify(ex.data).summary())  # doctest: +SKIP
        """
        return "\n\n".join(m.summary() for m in self.models)

    def __str__(self) -> str:
        return self.summary()

    def plot(self):
        """Forest plots of every model, one panel each; returns the matplotlib Figure.

        Examples
        --------
        >>> fig = fit_identify(ex.data).plot()  # doctest: +SKIP
        """
        from matplotlib.figure import Figure

        rows = [max(len(m.table), 1) for m in self.models]
        fig = Figure(figsize=(6, 1 + 0.5 * sum(rows)))
        axes = fig.subplots(len(rows), 1, squeeze=False, gridspec_kw={"height_ratios": rows})[:, 0]
        for m, ax in zip(self.models, axes, strict=True):
            m.plot(ax=ax)
        fig.tight_layout()
        return fig


def fit_task(data: pd.DataFrame, task: str, config: AnalysisConfig | dict | None = None, *,
             design: str | None = None, mixed: bool | None = None, **options: Any) -> TaskResult:
    """Fit one task's primary and mixed model, as the report does.

    Parameters
    ----------
    data : pandas.DataFrame
        Rows after exclusions (``apply_exclusions(...).data``); other tasks' rows are ignored. Control
        stimuli are left out (as in the report).
    task : str
        ``identify``, ``rate``, ``compare``, ``explain`` or ``explain_pair``.
    config : AnalysisConfig or dict, optional
        The options (see `make_config`).
    design : str, optional
        The stimulus design (``fixed_budget``, ``matched_norm``, ``minimal``, ``ross``); by default read
        from the export's ``stimulus_design`` column. Where it does not fix the perturbation norm the
        primary test adjusts for it.
    mixed : bool, optional
        Fit the mixed model too (default: the config's ``mixed_model``).
    **options
        Options overriding `config`.

    Returns
    -------
    TaskResult
        ``.primary`` and ``.secondary["mixed"]``, each a ModelResult with a tidy ``.table``,
        ``.summary()`` and ``.plot()``.

    Examples
    --------
    >>> from advlegit.analysis import fit_task
    >>> res = fit_task(ex.data, "rate", mixed=False)  # doctest: +SKIP
    >>> res.primary.table[["term", "estimate", "ci_low", "ci_high", "p_adjusted"]]  # doctest: +SKIP
    """
    from advlegit.analysis import pipeline

    cfg = make_config(config, **options)
    check_excluded(data)
    d = models.task_frame(data, task)
    if d["participant_id"].nunique() < pipeline.MIN_PARTICIPANTS:
        raise AnalysisError(f"{task}: {d['participant_id'].nunique()} participant(s) with answered {task} trials; "
                            f"the models need at least {pipeline.MIN_PARTICIPANTS}")
    ref, _ = pipeline.resolve_defenses(cfg, models.defenses_of(d, task), task)
    if design is None:
        design, _ = designs.detect(d)
    out = TaskResult(task, ref, models.primary_model(task, d, cfg, ref, design))
    if cfg.mixed_model if mixed is None else mixed:
        sub = d
        if task == "identify":  # the report's cap on the identify GLMM (mixed_model_max_participants)
            sub, _ = pipeline._subsample(d, cfg.mixed_model_max_participants, cfg.seed)
        out.secondary["mixed"] = models.mixed_model(task, sub, cfg, ref)
    return out


def check_excluded(data: pd.DataFrame) -> None:
    """The models read main trials after exclusions; an export passed straight in would mix in practice and
    attention-check trials and the participants the rules remove."""
    if "trial_kind" not in data or "is_attention_check" not in data:
        raise AnalysisError("fit_* needs rows with the export's columns: pass apply_exclusions(df).data")
    extra = (data["trial_kind"] != "main") | data["is_attention_check"].fillna(False).astype(bool)
    if extra.any():
        raise AnalysisError(f"{int(extra.sum())} rows are practice or attention-check trials: the models are fitted "
                            "after the exclusions; pass apply_exclusions(df).data, not the export itself")


def _task_fitter(task: str):
    def fit(data: pd.DataFrame, config: AnalysisConfig | dict | None = None, *, design: str | None = None,
            mixed: bool | None = None, **options: Any) -> TaskResult:
        return fit_task(data, task, config, design=design, mixed=mixed, **options)

    fit.__name__ = fit.__qualname__ = f"fit_{task}"
    return fit


fit_identify = _task_fitter("identify")
fit_identify.__doc__ = """Fit the identify task: P(target class named | defense).

Primary: logit ``target_hit ~ defense`` (+ L2 norm where the design does not fix it), cluster-robust by
participant and (source, target) group, one row per pre-registered contrast, estimates in log odds ratios.
Mixed: binomial GLMM with crossed random intercepts for participant, image (and group).

Parameters
----------
data : pandas.DataFrame
    Rows after exclusions.
config : AnalysisConfig or dict, optional
    The options (see `make_config`).
design : str, optional
    The stimulus design; by default from the export.
mixed : bool, optional
    Fit the mixed model too (default: the config's ``mixed_model``).
**options
    Options overriding `config`.

Returns
-------
TaskResult

Examples
--------
>>> import numpy as np
>>> from advlegit.analysis import load_export, apply_exclusions, fit_identify
>>> ex = apply_exclusions(load_export("export.csv"))  # doctest: +SKIP
>>> res = fit_identify(ex.data)  # doctest: +SKIP
>>> print(res.primary.summary())  # doctest: +SKIP
>>> np.exp(res.primary.table[["estimate", "ci_low", "ci_high"]])  # odds ratios  # doctest: +SKIP
"""

fit_rate = _task_fitter("rate")
fit_rate.__doc__ = """Fit the rate task: 1-7 resemblance to the target class.

Primary: ``rating ~ defense`` by least squares, cluster-robust (participant and group), estimates in
rating points. Mixed: proportional-odds model with crossed random intercepts for participant and image.

Parameters
----------
data : pandas.DataFrame
    Rows after exclusions.
config : AnalysisConfig or dict, optional
    The options (see `make_config`).
design : str, optional
    The stimulus design; by default from the export.
mixed : bool, optional
    Fit the mixed model too (default: the config's ``mixed_model``).
**options
    Options overriding `config`.

Returns
-------
TaskResult

Examples
--------
>>> res = fit_rate(ex.data, mixed=False)  # doctest: +SKIP
>>> res.primary.table  # doctest: +SKIP
"""

fit_compare = _task_fitter("compare")
fit_compare.__doc__ = """Fit the compare task: which of two defenses' images looks more like the target?

Primary: per contrast 'a vs b', logit P(a chosen) with a centred left-side term, cluster-robust; estimates
in log odds of choosing a over b. Mixed: the same per pair with random intercepts for participant and group.

Parameters
----------
data : pandas.DataFrame
    Rows after exclusions.
config : AnalysisConfig or dict, optional
    The options (see `make_config`).
design : str, optional
    The stimulus design; by default from the export.
mixed : bool, optional
    Fit the mixed model too (default: the config's ``mixed_model``).
**options
    Options overriding `config`.

Returns
-------
TaskResult

Examples
--------
>>> res = fit_compare(ex.data)  # doctest: +SKIP
>>> res.table.query("model == 'primary'")  # doctest: +SKIP
"""

fit_explain = _task_fitter("explain")
fit_explain.__doc__ = """Fit the explain task: 1-7 ratings of how well a model's saliency map explains the digit.

Primary: ``rating ~ model`` by least squares, cluster-robust; estimates in rating points. Mixed:
proportional-odds model with crossed random intercepts for participant and image.

Parameters
----------
data : pandas.DataFrame
    Rows after exclusions.
config : AnalysisConfig or dict, optional
    The options (see `make_config`).
design : str, optional
    The stimulus design; by default from the export.
mixed : bool, optional
    Fit the mixed model too (default: the config's ``mixed_model``).
**options
    Options overriding `config`.

Returns
-------
TaskResult

Examples
--------
>>> fit_explain(ex.data).summary()  # doctest: +SKIP
"""

fit_explain_pair = _task_fitter("explain_pair")
fit_explain_pair.__doc__ = """Fit the explain_pair task: which of two models' saliency maps shows the digit better?

Primary and mixed model as for `fit_compare`, on the chosen map.

Parameters
----------
data : pandas.DataFrame
    Rows after exclusions.
config : AnalysisConfig or dict, optional
    The options (see `make_config`).
design : str, optional
    The stimulus design; by default from the export.
mixed : bool, optional
    Fit the mixed model too (default: the config's ``mixed_model``).
**options
    Options overriding `config`.

Returns
-------
TaskResult

Examples
--------
>>> fit_explain_pair(ex.data).plot()  # doctest: +SKIP
"""


@dataclass
class StudyResult:
    """Everything `analyse` fitted: the exclusions and one TaskResult per task in the export.

    Attributes
    ----------
    exclusions : ExclusionResult
        The rules' table and the rows kept.
    tasks : dict of str to TaskResult
        One entry per task type with responses, in the registry's order.
    config : AnalysisConfig
        The options used.

    Examples
    --------
    >>> res = analyse("export.csv")  # doctest: +SKIP
    >>> res["compare"].primary.table  # doctest: +SKIP
    """

    exclusions: ExclusionResult
    tasks: dict[str, TaskResult]
    config: AnalysisConfig

    def __getitem__(self, task: str) -> TaskResult:
        if task not in self.tasks:
            raise KeyError(f"no {task!r} results; tasks: {', '.join(self.tasks) or '(none)'}")
        return self.tasks[task]

    @property
    def table(self) -> pd.DataFrame:
        """Every task's and model's rows in one tidy frame (columns `TIDY_COLUMNS`)."""
        frames = [t.table for t in self.tasks.values()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TIDY_COLUMNS)

    def summary(self) -> str:
        """The exclusions in one line, then every task's summary.

        Examples
        --------
        >>> print(analyse("export.csv").summary())  # doctest: +SKIP
        """
        t = self.exclusions.table
        head = (f"{int(t['participants_left'].iat[-1])} participants and {int(t['responses_left'].iat[-1])} "
                f"main-trial responses kept of {int(t['participants_left'].iat[0])} and "
                f"{int(t['responses_left'].iat[0])} after {len(t) - 1} exclusion rules")
        return "\n\n".join([head] + [r.summary() for r in self.tasks.values()])

    def __str__(self) -> str:
        return self.summary()

    def plot(self, task: str | None = None):
        """The forest plots of one task (by default the first); returns the matplotlib Figure.

        Examples
        --------
        >>> analyse("export.csv").plot("identify").savefig("identify.png")  # doctest: +SKIP
        """
        if not self.tasks:
            raise AnalysisError("no task had enough responses to fit")
        return self[task or next(iter(self.tasks))].plot()


def analyse(source: str | Path | pd.DataFrame, config: AnalysisConfig | dict | None = None, *,
            mixed: bool | None = None, **options: Any) -> StudyResult:
    """Load, exclude and fit every task in an export: the report's statistics without the report.

    Parameters
    ----------
    source : str, pathlib.Path or pandas.DataFrame
        An export file or frame (see `load_export`).
    config : AnalysisConfig or dict, optional
        The options (see `make_config`).
    mixed : bool, optional
        Fit the mixed models too (default: the config's ``mixed_model``).
    **options
        Options overriding `config`.

    Returns
    -------
    StudyResult
        ``.exclusions``, ``.tasks[task]`` (TaskResult), ``.table`` (every model, tidy), ``.summary()``.

    Raises
    ------
    AnalysisError
        If the export is invalid, the exclusions remove everything, or a task has one defense only.

    Examples
    --------
    >>> from advlegit.analysis import analyse
    >>> res = analyse("export.csv", alpha=0.05)  # doctest: +SKIP
    >>> res.table.query("model == 'primary'")  # doctest: +SKIP
    >>> res["identify"].primary.plot()  # doctest: +SKIP
    """
    from advlegit.analysis.tasks import TASKS

    df = load_export(source)
    cfg = make_config(config, **options)
    ex = _apply_exclusions(df, cfg)
    design, _ = designs.detect(df)
    tasks = {}
    for task in TASKS:
        part = ex.data[ex.data["task_type"] == task]
        if len(part) and part["participant_id"].nunique() >= 2:
            tasks[task] = fit_task(part, task, cfg, design=design, mixed=mixed)
    return StudyResult(ex, tasks, cfg)
