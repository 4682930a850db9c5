import pytest

from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.errors import AnalysisError
from advlegit.analysis.exclusions import apply_exclusions


def test_each_rule_counts_what_it_removed(identify_df):
    cfg = AnalysisConfig(attention_threshold=0.75, rt_floor_ms=800)
    res = apply_exclusions(identify_df, cfg)
    t = res.table.set_index("rule")
    main = identify_df[identify_df["trial_kind"] == "main"]
    marked = (main["participant_review"] == "excluded") | (main["participant_state"] == "excluded")
    assert t.loc["marked excluded in the app", "responses_removed"] == marked.sum()
    left = main[~marked]
    incomplete = ~left["participant_state"].isin(["data_complete", "code_issued"])
    assert t.loc["incomplete participant", "participants_removed"] == left.loc[incomplete, "participant_id"].nunique()
    left = left[~incomplete]
    checks = identify_df[identify_df["is_attention_check"]]
    rate = checks.groupby("participant_id")["attention_passed"].mean()
    bad = set(rate[rate < 0.75].index)
    assert t.loc["failed attention checks", "responses_removed"] == left["participant_id"].isin(bad).sum()
    left = left[~left["participant_id"].isin(bad)]
    assert t.loc["response faster than RT floor", "responses_removed"] == (left["rt_ms"] < 800).sum()
    assert len(res.data) == (left["rt_ms"] >= 800).sum()
    # rows add up and every rule removed someone in this simulated study
    assert t["responses_removed"].iloc[1:].sum() + len(res.data) == len(main)
    assert (t["responses_removed"].iloc[1:] > 0).all()
    assert (res.data["trial_kind"] == "main").all()


def test_all_excluded_is_an_error(identify_df):
    with pytest.raises(AnalysisError, match="all .* responses were excluded"):
        apply_exclusions(identify_df, AnalysisConfig(rt_floor_ms=1e9))
