"""Pre-registered exclusion rules, applied in a fixed order before any statistic.

Each rule reports how many participants and main-trial responses it removed (counted
after the earlier rules, so the rows of the table add up).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.config import AnalysisConfig
from analysis.errors import AnalysisError


@dataclass
class ExclusionResult:
    data: pd.DataFrame  # main trials that survive every rule
    table: pd.DataFrame  # rule, participants_removed, responses_removed, ...
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


def apply_exclusions(df: pd.DataFrame, cfg: AnalysisConfig) -> ExclusionResult:
    main = _main(df)
    n_part0, n_resp0 = main["participant_id"].nunique(), len(main)
    if n_resp0 == 0:
        raise AnalysisError("the export has no main-trial responses (only practice or attention checks)")
    rows = [("all main-trial responses in the export", "", 0, 0, n_part0, n_resp0)]
    keep = main

    def drop(rule: str, detail: str, mask: pd.Series) -> None:
        nonlocal keep
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
    att = attention_rates(df)
    failed = set(att.index[att["pass_rate"] < cfg.attention_threshold])
    drop("failed attention checks", f"pass rate < {cfg.attention_threshold:g}",
         keep["participant_id"].isin(failed))
    drop("response faster than RT floor", f"rt_ms < {cfg.rt_floor_ms:g}",
         keep["rt_ms"].notna() & (keep["rt_ms"] < cfg.rt_floor_ms))
    table = pd.DataFrame(rows, columns=["rule", "criterion", "participants_removed",
                                        "responses_removed", "participants_left", "responses_left"])
    if len(keep) == 0:
        culprits = [r[0] for r in rows[1:] if r[3] > 0]
        raise AnalysisError(
            f"all {n_resp0} main-trial responses were excluded (by: {', '.join(culprits)}); "
            "check the exclusion options")
    return ExclusionResult(data=keep.copy(), table=table, attention=att)
