"""The primary and secondary (mixed) model of each task, as results objects in one tidy vocabulary.

The report (analysis/pipeline.py, analysis/tasks/) and the public API (analysis/api.py) both call
`primary_model` and `mixed_model` here, so a notebook and a report cannot disagree: the report's
primary table is `ModelResult.detail` of the very object the API hands a researcher.

One column vocabulary for every table a results object holds (`TIDY_COLUMNS`), as in pingouin's and
statsmodels' summary frames: estimates and intervals are on the model's own scale, named in `scale`
(log odds ratio, rating points); exponentiate a log-odds row yourself for an odds ratio.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from advlegit.analysis import designs, identify
from advlegit.analysis import rate as rating_stats
from advlegit.analysis.config import AnalysisConfig, level_label

TIDY_COLUMNS = ["task", "model", "term", "estimate", "std_error", "ci_low", "ci_high", "ci_level", "statistic",
                "df", "p_value", "p_adjusted", "scale", "method"]

CHOICE_TASKS = ("compare", "explain_pair")  # two defenses per trial: defense (left) and defense_b (right)
RATING_TASKS = ("rate", "explain")


@dataclass
class ModelResult:
    """One fitted model of one task: estimates, intervals and tests as one tidy frame.

    Attributes
    ----------
    task : str
        The task type (``identify``, ``rate``, ``compare``, ``explain``, ``explain_pair``).
    model : str
        ``"primary"`` (the pre-registered test) or ``"mixed"`` (the secondary mixed model).
    method : str
        The estimator in words (e.g. "logit, cluster-robust (CRV1)").
    scale : str
        What `estimate`, `ci_low` and `ci_high` are measured in ("log odds ratio", "rating points").
    table : pandas.DataFrame
        One row per term, columns `TIDY_COLUMNS`: task, model, term, estimate, std_error, ci_low,
        ci_high, ci_level, statistic, df, p_value, p_adjusted, scale, method.
    detail : pandas.DataFrame
        The same fit in the report's own columns (the table the report prints, e.g. odds ratios).
    reference : str
        The reference defense every other is contrasted with.
    notes : list of str
        What the estimator had to do (dropped columns, singular fits, engine).
    n_participants, n_responses : int
        The rows the model was fitted to.

    Examples
    --------
    >>> res = fit_identify(ex.data)  # doctest: +SKIP
    >>> res.primary.table[["term", "estimate", "ci_low", "ci_high", "p_adjusted"]]  # doctest: +SKIP
    >>> res.primary.detail  # the report's own table (odds ratios)  # doctest: +SKIP
    """

    task: str
    model: str
    method: str
    scale: str
    table: pd.DataFrame
    detail: pd.DataFrame
    reference: str
    notes: list[str] = field(default_factory=list)
    n_participants: int = 0
    n_responses: int = 0

    def summary(self) -> str:
        """The fit as readable text: what was fitted, on what, and one line per term.

        Returns
        -------
        str
            A plain-text table (print it).

        Examples
        --------
        >>> print(res.primary.summary())  # doctest: +SKIP
        identify, primary model: logit target_hit ~ defense, cluster-robust (CRV1)
        ...
        """
        lines = [f"{self.task}, {self.model} model: {self.method}",
                 f"{self.n_participants} participants, {self.n_responses} responses; reference: {self.reference}; "
                 f"estimates in {self.scale}"]
        head = f"{'term':<30}{'estimate':>10}{'std_err':>9}{'ci_low':>9}{'ci_high':>9}{'stat':>8}{'p':>9}{'p_adj':>9}"
        lines += [head, "-" * len(head)]
        for r in self.table.itertuples():
            lines.append(f"{str(r.term):<30}{_num(r.estimate, 10)}{_num(r.std_error, 9)}{_num(r.ci_low, 9)}"
                         f"{_num(r.ci_high, 9)}{_num(r.statistic, 8, 2)}{_p(r.p_value)}{_p(r.p_adjusted)}")
        if len(self.table):
            lines.append(f"intervals: {', '.join(sorted(set(self.table['ci_level'].astype(str))))}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def plot(self, ax=None):
        """Forest plot: each term's estimate with its interval, a line at no effect (0).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Draw into these axes; by default a new figure is made.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn (save it with ``fig.savefig("primary.png")``).

        Examples
        --------
        >>> fig = res.primary.plot()  # doctest: +SKIP
        >>> fig.savefig("identify_primary.png")  # doctest: +SKIP
        """
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(6, 0.5 + 0.45 * max(len(self.table), 1)))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        t = self.table.iloc[::-1]
        y = np.arange(len(t))
        est = t["estimate"].to_numpy(float)
        err = np.vstack([est - t["ci_low"].to_numpy(float), t["ci_high"].to_numpy(float) - est])
        ax.errorbar(est, y, xerr=np.where(np.isfinite(err), err, 0), fmt="o", color="black", capsize=3)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.set_yticks(y, t["term"].astype(str))
        ax.set_xlabel(self.scale)
        ax.set_title(f"{self.task}: {self.model} model")
        fig.tight_layout()
        return fig


def tidy_table(results: dict[str, list[ModelResult]]) -> pd.DataFrame:
    """Every model's tidy rows, task by task (the report's tables/models.csv)."""
    frames = [m.table for ms in results.values() for m in ms]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TIDY_COLUMNS)


def _num(v, width: int, digits: int = 3) -> str:
    return f"{v:>{width}.{digits}f}" if v is not None and np.isfinite(float(v)) else f"{'':>{width}}"


def _p(v) -> str:
    if v is None or not np.isfinite(float(v)):
        return f"{'':>9}"
    return f"{'<0.001':>9}" if v < 0.001 else f"{v:>9.3f}"


def _tidy(task: str, model: str, scale: str, method: str, term, estimate, se, lo, hi, level, stat, df, p,
          p_adj=None) -> pd.DataFrame:
    n = len(term)

    def col(v) -> pd.Series:  # positional, float; None = not defined for this model (e.g. no Holm)
        return pd.Series(np.nan, index=range(n)) if v is None else pd.Series(v).reset_index(drop=True).astype(float)

    out = pd.DataFrame({"task": task, "model": model, "term": pd.Series(term).astype(str).reset_index(drop=True),
                        "estimate": col(estimate), "std_error": col(se), "ci_low": col(lo), "ci_high": col(hi),
                        "ci_level": level if isinstance(level, str) else pd.Series(level).reset_index(drop=True),
                        "statistic": col(stat), "df": col(df), "p_value": col(p), "p_adjusted": col(p_adj),
                        "scale": scale, "method": method})
    return out[TIDY_COLUMNS]


# --- which rows a task's models read -------------------------------------------------------------
def task_frame(data: pd.DataFrame, task: str) -> pd.DataFrame:
    """The task's answered main-trial rows on adversarial stimuli (controls answer another question)."""
    from advlegit.analysis import compare
    from advlegit.analysis.tasks import explain, explain_pair

    frames = {"identify": identify.identify_frame, "rate": rating_stats.rate_frame, "compare": compare.compare_frame,
              "explain": explain.frame, "explain_pair": explain_pair.frame}
    if task not in frames:
        from advlegit.analysis.errors import AnalysisError
        raise AnalysisError(f"unknown task {task!r} (expected one of {', '.join(frames)})")
    return designs.adversarial_only(frames[task](data))


def defenses_of(d: pd.DataFrame, task: str) -> list[str]:
    if task in CHOICE_TASKS:
        return sorted(set(d["defense"]) | set(d["defense_b"]))
    return sorted(d["defense"].unique())


# --- the primary (pre-registered) model ----------------------------------------------------------
def primary_model(task: str, d: pd.DataFrame, cfg: AnalysisConfig, ref: str, design: str = "") -> ModelResult:
    """The pre-registered test of `task` on its prepared rows `d` (task_frame), as the report runs it."""
    from advlegit.analysis import pipeline

    n = dict(n_participants=int(d["participant_id"].nunique()), n_responses=len(d), reference=ref)
    if task == "identify":
        outcome = cfg.outcome_for("identify")
        adjust = pipeline.norm_covariates(d, design)
        det, notes = pipeline.primary_identify(d, cfg, ref, outcome, adjust)
        method = (f"logit {outcome} ~ defense" + "".join(f" + {c}" for c in adjust)
                  + ", cluster-robust (CRV1) by participant and group, t reference; Holm within the family")
        tab = _tidy(task, "primary", "log odds ratio", method, det["contrast"], det["log_or"], det["se"],
                    np.log(det["or_ci_low"]), np.log(det["or_ci_high"]), det["ci_level"], det["t"], det["df"],
                    det["p"], det["p_holm"])
    elif task in RATING_TASKS:
        adjust = pipeline.norm_covariates(d, design) if task == "rate" else ()
        det, notes = pipeline.primary_rate(d, cfg, ref, adjust)
        method = ("rating ~ defense" + "".join(f" + {c}" for c in adjust)
                  + " by least squares, cluster-robust by participant and group; Holm within the family")
        tab = _tidy(task, "primary", "rating points", method, det["contrast"], det["mean_diff"], det["se"],
                    det["ci_low"], det["ci_high"], det["ci_level"], det["t"], det["df"], det["p"], det["p_holm"])
    else:
        det, notes = pipeline.primary_compare(d, cfg, ref, design)
        method = ("logit P(a chosen over b) ~ 1 + a_shown_left per contrast 'a vs b', cluster-robust by "
                  "participant and group; Holm within the family")
        tab = _tidy(task, "primary", "log odds (a chosen over b)", method, det["contrast"], det["log_odds"],
                    det["se"], np.log(det["or_ci_low"]), np.log(det["or_ci_high"]), det["ci_level"], det["t"],
                    det["df"], det["p"], det["p_holm"])
    scale = tab["scale"].iat[0] if len(tab) else ""
    return ModelResult(task, "primary", method, scale, tab, det, notes=list(notes), **n)


# --- the secondary (mixed) model -----------------------------------------------------------------
def identify_random(d: pd.DataFrame) -> tuple[str, ...]:
    """Crossed random intercepts: participant and image, and (source, target) group where the export has it."""
    has_group = "group" in d and (d["group"].astype(str) != "").all() and d["group"].nunique() > 1
    return ("participant_id", "stimulus_id") + (("group",) if has_group else ())


def mixed_model(task: str, d: pd.DataFrame, cfg: AnalysisConfig, ref: str) -> ModelResult:
    """The task's mixed model on its prepared rows `d` (task_frame), as the report fits it: binomial
    GLMM for identify, proportional-odds for rate/explain, binomial per pair for compare/explain_pair."""
    from advlegit.analysis import pipeline

    n = dict(n_participants=int(d["participant_id"].nunique()), n_responses=len(d), reference=ref)
    level = level_label(cfg.alpha)
    if task == "identify":
        random = identify_random(d)
        fe, vc = identify.bayes_glmm(d, "target_hit", ref, alpha=cfg.alpha, random=random)
        fe.attrs["variance"] = vc
        fe.attrs["random"] = random
        method = ("binomial GLMM target_hit ~ defense + " + " + ".join(f"(1|{r})" for r in random)
                  + f", Laplace ML ({fe.attrs.get('engine', '')})")
        tab = _tidy(task, "mixed", "log odds", method, fe["term"], fe["estimate"], fe["se"], fe["ci_low"],
                    fe["ci_high"], level, fe["z"], fe["df"], fe["p"])
        notes = list(fe.attrs.get("notes") or [])
        det = fe
    elif task in RATING_TASKS:
        det = rating_stats.ordinal_model(d, ref, cfg.alpha)
        q = stats.t.ppf(1 - cfg.alpha / 2, det["df"].astype(float))
        engine = det.attrs.get("engine", "")
        method = f"proportional-odds mixed model rating ~ defense + (1|participant) + (1|image) ({engine})"
        tab = _tidy(task, "mixed", "log odds (higher rating)", method, det["term"], det["log_odds"], det["se"],
                    det["log_odds"] - q * det["se"], det["log_odds"] + q * det["se"], level,
                    det["log_odds"] / det["se"], det["df"], det["p"])
        notes = list(det.attrs.get("notes") or [])
    else:
        from advlegit.analysis.tasks.explain_pair import mixed_pairs

        det = mixed_pairs(d, pipeline.contrasts_for(cfg, defenses_of(d, task), ref), cfg.alpha)
        for c in ("log_odds", "se", "or_ci_low", "or_ci_high", "p"):
            if c not in det:
                det[c] = np.nan
        method = "binomial GLMM per pair: chose a ~ 1 + a_shown_left + (1|participant) + (1|group)"
        tab = _tidy(task, "mixed", "log odds (a chosen over b)", method, det["contrast"], det["log_odds"],
                    det["se"], np.log(det["or_ci_low"]), np.log(det["or_ci_high"]), level,
                    det["log_odds"] / det["se"], None, det["p"])
        notes = list(dict.fromkeys(str(x) for x in det.get("note", pd.Series(dtype=str)) if isinstance(x, str) and x))
    return ModelResult(task, "mixed", method, tab["scale"].iat[0] if len(tab) else "", tab, det, notes=notes, **n)
