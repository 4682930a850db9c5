"""Pre-registered exclusion rules, applied before any statistic: first the two the study app decides
(participants marked excluded, participants who did not finish), then — in a study with a response
window — the trials that got no answer in time (their outcome is missing, not wrong), then the design's
`exclusions` list (contracts/exclusion_rules.py) in the order it is written.

Each rule reports how many participants and main-trial responses it removed (counted after the earlier
rules, so the rows of the table add up). Participant-level rules judge a participant on everything the
export holds for them (every attention check, every main trial), not on what earlier rules left.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.errors import AnalysisError
from advlegit.contracts import exclusion_rules


@dataclass
class ExclusionResult:
    """What the exclusion rules left, and what each removed.

    Attributes
    ----------
    data : pandas.DataFrame
        The main-trial rows that survive every rule (what the models are fitted to).
    table : pandas.DataFrame
        One row per rule, in order: rule, criterion, participants_removed, responses_removed,
        participants_left, responses_left.
    attention : pandas.DataFrame
        Per participant: checks, passed, pass_rate.

    Examples
    --------
    >>> ex = apply_exclusions(load_export("export.csv"))  # doctest: +SKIP
    >>> ex.table  # doctest: +SKIP
    """

    data: pd.DataFrame  # main trials that survive every rule
    table: pd.DataFrame  # rule, criterion, participants_removed, responses_removed, participants_left, responses_left
    attention: pd.DataFrame  # per participant: checks, passed, pass_rate


def _main(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["trial_kind"] == "main") & ~df["is_attention_check"].fillna(False).astype(bool)]


def attention_rates(df: pd.DataFrame) -> pd.DataFrame:
    checks = df[df["is_attention_check"].fillna(False).astype(bool)]
    passed = checks["attention_passed"].fillna(False).astype(bool)
    g = passed.groupby(checks["participant_id"])
    out = pd.DataFrame({"checks": g.size(), "passed": g.sum()})
    out["pass_rate"] = out["passed"] / out["checks"]
    return out


def check_columns(df: pd.DataFrame, rules: tuple[dict[str, Any], ...]) -> None:
    """Every configured rule's columns are in the export and hold values; else an error naming them
    (an export from before the column existed reads as empty: analysis/load.py adds it blank)."""
    for i, rule in enumerate(rules, 1):
        spec = exclusion_rules.RULES[rule["rule"]]
        lacking = [c for c in spec.columns if c not in df.columns or df[c].isna().all()
                   or (df[c].dtype == object and (df[c].astype(str) == "").all())]
        if lacking:
            raise AnalysisError(
                f"exclusion rule {i} ({rule['rule']}) needs the export column(s) {', '.join(lacking)}, which this "
                "export lacks or leaves empty (an export from an older advlegit, or a study that did not record "
                "them); remove the rule from `exclusions` or export the study again with a newer advlegit")


def _participant_values(df: pd.DataFrame, col: str) -> pd.Series:
    """A per-participant column (repeated on each of their rows): one value per participant."""
    return pd.to_numeric(df[col], errors="coerce").groupby(df["participant_id"]).first()


def rule_mask(rule: dict[str, Any], keep: pd.DataFrame, df: pd.DataFrame, main: pd.DataFrame,
              att: pd.DataFrame) -> pd.Series:
    """Which rows of `keep` the rule removes."""
    n = rule["rule"]
    pid = keep["participant_id"]
    if n == "attention_checks":
        return pid.isin(set(att.index[att["pass_rate"] < rule["min_pass_rate"]]))
    if n == "rt_floor":
        return keep["rt_ms"].notna() & (keep["rt_ms"] < rule["ms"])
    if n == "instruction_time":
        v = _participant_values(df, "instructions_ms")
        return pid.isin(set(v.index[v < rule["min_s"] * 1000]))
    if n == "total_time":
        v = _participant_values(df, "session_ms")
        return pid.isin(set(v.index[(v < rule["min_s"] * 1000) | (v > rule["max_s"] * 1000)]))
    if n == "straight_lining":
        answered = main[main["response"].astype(str) != ""]
        share = answered.groupby("participant_id")["response"].agg(lambda r: r.value_counts().iloc[0] / len(r))
        return pid.isin(set(share.index[share > rule["max_share"]]))
    if n == "focus_loss":
        return keep["focus_lost"].fillna(False).astype(bool)
    if n == "exposure_timing":
        # One frame is the participant's own (measured) frame, as the export's exposure_missed: a fixed
        # 16.7 ms would be two frames at 120 Hz and half a frame at 30 Hz.
        req = pd.to_numeric(keep["exposure_ms_requested"], errors="coerce")
        got = pd.to_numeric(keep["exposure_ms_measured"], errors="coerce")
        hz = pd.to_numeric(keep["refresh_hz"], errors="coerce")
        timed = req.fillna(0) > 0
        allowed = rule["max_miss_frames"] * 1000.0 / hz + 0.5
        miss = ((got - req).abs() > allowed) | got.isna() | hz.isna()
        return timed & miss
    raise AnalysisError(f"unknown exclusion rule {n!r}")


def apply_exclusions(df: pd.DataFrame, cfg: AnalysisConfig) -> ExclusionResult:
    rules = cfg.exclusion_rules()
    check_columns(df, rules)
    main = _main(df)
    n_part0, n_resp0 = main["participant_id"].nunique(), len(main)
    if n_resp0 == 0:
        raise AnalysisError("the export has no main-trial responses (only practice or attention checks)")
    rows = [("all main-trial responses in the export", "", 0, 0, n_part0, n_resp0)]
    keep = main

    def drop(rule: str, detail: str, mask: pd.Series) -> None:
        nonlocal keep
        mask = np.asarray(mask, dtype=bool)
        removed = keep[mask]
        after = keep[~mask]
        lost_people = keep["participant_id"].nunique() - after["participant_id"].nunique()
        keep = after
        rows.append((rule, detail, int(lost_people), len(removed),
                     keep["participant_id"].nunique(), len(keep)))

    review = keep["participant_review"].str.lower()
    drop("marked excluded in the app", "participant_review == excluded or state excluded",
         (review == "excluded") | (keep["participant_state"] == "excluded"))
    drop("incomplete participant", "state not in " + "/".join(cfg.complete_states),
         ~keep["participant_state"].isin(cfg.complete_states))
    if "response_timed_out" in keep.columns:
        timed_out = keep["response_timed_out"].astype("boolean").fillna(False).astype(bool)
        if timed_out.any():  # a study with a response window: trials without an answer are not outcomes
            drop("no answer within the response window", "response_timed_out", timed_out)
    att = attention_rates(df)
    for rule in rules:
        spec = exclusion_rules.RULES[rule["rule"]]
        drop(spec.label, exclusion_rules.criterion(rule), rule_mask(rule, keep, df, main, att))
    table = pd.DataFrame(rows, columns=["rule", "criterion", "participants_removed",
                                        "responses_removed", "participants_left", "responses_left"])
    if len(keep) == 0:
        culprits = [r[0] for r in rows[1:] if r[3] > 0]
        raise AnalysisError(
            f"all {n_resp0} main-trial responses were excluded (by: {', '.join(culprits)}); "
            "check the exclusion options")
    return ExclusionResult(data=keep.copy(), table=table, attention=att)
