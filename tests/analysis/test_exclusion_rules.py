"""The design's ordered exclusion rules (contracts/exclusion_rules.py, analysis/exclusions.py): each rule
removes what it says, in the order written, reads its own export columns, and says which key is wrong."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from advlegit.analysis.config import AnalysisConfig, load_config
from advlegit.analysis.errors import AnalysisError
from advlegit.analysis.exclusions import apply_exclusions
from advlegit.analysis.load import read_export
from advlegit.analysis.simulate import write_export

COMPLETE = ("data_complete", "code_issued")


def _with_trial_columns(df: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """The presentation protocol's per-trial columns, as a newer export carries them."""
    rng = np.random.default_rng(seed)
    d = df.copy()
    n = len(d)
    d["focus_lost"] = pd.array(rng.random(n) < 0.05, dtype="boolean")
    req = np.where(rng.random(n) < 0.9, 200.0, 0.0)  # 0: shown until answered (never a miss)
    got = req + rng.normal(0, 6, n)
    got[rng.random(n) < 0.04] += 40  # a missed frame or three
    got[rng.random(n) < 0.02] = np.nan  # not measured
    d["exposure_ms_requested"], d["exposure_ms_measured"] = req, np.where(req > 0, got, np.nan)
    # each participant's measured display: most at 60 Hz, some at 120 Hz (a frame is half as long there)
    hz = d["participant_id"].map(lambda p: 120.0 if hash(p) % 4 == 0 else 60.0)
    d["refresh_hz"] = np.where(req > 0, hz, np.nan)
    return d


def _people(rows: pd.DataFrame) -> set:
    return set(rows["participant_id"])


def test_rules_remove_what_they_say_in_the_order_written(identify_df):
    df = _with_trial_columns(identify_df)
    # one straight-liner among the finishers
    finishers = df[df["participant_state"].isin(COMPLETE) & (df["participant_review"] == "")]
    liner = sorted(_people(finishers))[0]
    df.loc[(df["participant_id"] == liner) & (df["trial_kind"] == "main"), "response"] = "7"
    rules = [{"rule": "instruction_time", "min_s": 7}, {"rule": "focus_loss"},
             {"rule": "straight_lining", "max_share": 0.8}, {"rule": "total_time", "min_s": 90, "max_s": 141.5},
             {"rule": "exposure_timing", "max_miss_frames": 1}, {"rule": "rt_floor", "ms": 800},
             {"rule": "attention_checks", "min_pass_rate": 0.7}]
    res = apply_exclusions(df, AnalysisConfig(exclusions=rules))
    t = res.table
    assert list(t["rule"]) == ["all main-trial responses in the export", "marked excluded in the app",
                               "incomplete participant", "instructions read too fast",
                               "page lost focus during trial", "straight-lining", "total time outside window",
                               "exposure timing missed", "response faster than RT floor", "failed attention checks"]
    # by hand, rule after rule
    main = df[(df["trial_kind"] == "main") & ~df["is_attention_check"]]
    left = main[(main["participant_review"] != "excluded") & main["participant_state"].isin(COMPLETE)]
    per = df.groupby("participant_id").first()
    removed = []

    def drop(mask):
        nonlocal left
        removed.append(int(mask.sum()))
        left = left[~mask]

    drop(left["participant_id"].isin(set(per.index[per["instructions_ms"] < 7000])))
    drop(left["focus_lost"].astype(bool))
    share = main.groupby("participant_id")["response"].agg(lambda r: r.value_counts().iloc[0] / len(r))
    assert share[liner] == 1.0
    drop(left["participant_id"].isin(set(share.index[share > 0.8])))
    drop(left["participant_id"].isin(set(per.index[(per["session_ms"] < 90000) | (per["session_ms"] > 141500)])))
    req, got, hz = left["exposure_ms_requested"], left["exposure_ms_measured"], left["refresh_hz"]
    drop((req > 0) & (((got - req).abs() > 1000.0 / hz + 0.5) | got.isna()))
    drop(left["rt_ms"] < 800)
    checks = df[df["is_attention_check"]]
    rate = checks.groupby("participant_id")["attention_passed"].mean()
    drop(left["participant_id"].isin(set(rate.index[rate < 0.7])))
    assert list(t["responses_removed"].iloc[3:]) == removed
    assert all(n > 0 for n in removed), removed  # every rule had work to do in this frame
    assert len(res.data) == len(left) and res.table["responses_left"].iloc[-1] == len(left)
    # the same rules in another order: the same data survive, but each row counts what it removed first
    again = apply_exclusions(df, AnalysisConfig(exclusions=list(reversed(rules))))
    assert again.data.index.equals(res.data.index)
    assert list(again.table["rule"].iloc[3:]) == list(t["rule"].iloc[3:][::-1])
    assert list(again.table["responses_removed"].iloc[3:]) != removed[::-1]
    # criterion column: what each rule removed, with the configured numbers
    assert list(t["criterion"].iloc[3:5]) == ["instructions_ms < 7000", "focus_lost"]


def test_the_default_list_is_the_old_fixed_order(identify_df):
    cfg = AnalysisConfig(attention_threshold=0.75, rt_floor_ms=800)
    assert cfg.exclusion_rules() == ({"rule": "attention_checks", "min_pass_rate": 0.75},
                                     {"rule": "rt_floor", "ms": 800.0})
    listed = AnalysisConfig(exclusions=[{"rule": "attention_checks", "min_pass_rate": 0.75},
                                        {"rule": "rt_floor", "ms": 800}])
    assert apply_exclusions(identify_df, cfg).table.equals(apply_exclusions(identify_df, listed).table)
    assert list(apply_exclusions(identify_df, cfg).table["criterion"].iloc[3:]) == ["pass rate < 0.75", "rt_ms < 800"]
    # a rule that leaves its parameter out takes the shorthand option's value, which then shows it
    cfg = AnalysisConfig(rt_floor_ms=800, attention_threshold=0.5,
                         exclusions=[{"rule": "rt_floor"}, {"rule": "attention_checks", "min_pass_rate": 0.75}])
    assert cfg.exclusion_rules() == (
        {"rule": "rt_floor", "ms": 800.0},
        {"rule": "attention_checks", "min_pass_rate": 0.75},
    )
    assert (cfg.rt_floor_ms, cfg.attention_threshold) == (800.0, 0.75)
    # an empty list keeps only the app's own two rules
    assert len(apply_exclusions(identify_df, AnalysisConfig(exclusions=[])).table) == 3


@pytest.mark.parametrize("rule, column", [({"rule": "focus_loss"}, "focus_lost"),
                                          ({"rule": "exposure_timing"}, "exposure_ms_requested"),
                                          ({"rule": "instruction_time"}, "instructions_ms"),
                                          ({"rule": "total_time"}, "session_ms")])
def test_a_rule_whose_columns_the_export_lacks_is_an_error(identify_df, tmp_path, rule, column):
    """An older export: the frame lacks the column, or (read from a file) the loader adds it empty."""
    old = identify_df.drop(columns=[c for c in ("focus_lost", "exposure_ms_requested", "exposure_ms_measured",
                                                 "refresh_hz", "instructions_ms", "session_ms") if c in identify_df])
    cfg = AnalysisConfig(exclusions=[{"rule": "rt_floor"}, rule])
    with pytest.raises(AnalysisError, match=rf"exclusion rule 2 \({rule['rule']}\) needs the export column\(s\) "
                                            rf".*{column}.*older advlegit"):
        apply_exclusions(old, cfg)
    from_file = read_export(write_export(old, tmp_path / "old.csv"))
    with pytest.raises(AnalysisError, match=rf"\({rule['rule']}\) needs .*{column}"):
        apply_exclusions(from_file, cfg)
    apply_exclusions(old, AnalysisConfig())  # the default rules need none of them


def test_bad_rules_are_refused_naming_the_key(tmp_path):
    cases = [
        ('rule = "rt_flor"', r"analysis\.exclusions\[1\]\.rule: unknown rule 'rt_flor' \(allowed: attention_checks"),
        ('rule = "rt_floor"\nms = -5', r"analysis\.exclusions\[1\]\.ms: must be >= 0"),
        ('rule = "rt_floor"\nseconds = 1', r"analysis\.exclusions\[1\]\.seconds: unknown parameter of rule 'rt_floor'"),
        ('rule = "straight_lining"\nmax_share = 1.5', r"analysis\.exclusions\[1\]\.max_share: must be a fraction"),
        ('rule = "total_time"\nmin_s = 900\nmax_s = 90', r"analysis\.exclusions\[1\]\.max_s: must be greater"),
        ("min_s = 3", r"analysis\.exclusions\[1\]\.rule: required"),
        (
            'rule = "focus_loss"\n[[analysis.exclusions]]\nrule = "focus_loss"',
            r"analysis\.exclusions\[2\]\.rule: 'focus_loss' is already rule 1",
        ),
    ]
    for body, message in cases:
        path = tmp_path / "c.toml"
        path.write_text(f"[[analysis.exclusions]]\n{body}\n")
        with pytest.raises(AnalysisError, match=message):
            load_config(path)
    path.write_text('[analysis]\nrt_floor_ms = 300\n[[analysis.exclusions]]\nrule = "rt_floor"\nms = 250\n')
    with pytest.raises(AnalysisError, match=r"exclusions\[1\]\.ms: 250 disagrees with rt_floor_ms = 300"):
        load_config(path)
    path.write_text('[analysis]\nrt_floor_ms = 300\nexclusions = [{rule = "focus_loss"}]\n')
    with pytest.raises(AnalysisError, match=r"rt_floor_ms: set, but .*exclusions has no 'rt_floor' rule"):
        load_config(path)


def test_design_file_companion_config_and_command_line_agree(tmp_path):
    sd = pytest.importorskip("advlegit.study_app.design")
    import tomllib
    toml = ('[study]\nname = "t"\ntask = "identify"\ntrials = 6\ntarget_sample_size = 10\n'
            '[consent]\ntext = "ok"\n[instructions]\ntext = "go"\n'
            '[analysis]\nrt_floor_ms = 250\n'
            '[[analysis.exclusions]]\nrule = "total_time"\nmin_s = 90\nmax_s = 900\n'
            '[[analysis.exclusions]]\nrule = "rt_floor"\n'
            '[[analysis.exclusions]]\nrule = "focus_loss"\n')
    d = sd.parse_design(tomllib.loads(toml))
    want = ({"rule": "total_time", "min_s": 90.0, "max_s": 900.0}, {"rule": "rt_floor", "ms": 250.0},
            {"rule": "focus_loss"})
    assert d.analysis.exclusions == want and d.analysis.set_in_design == ("rt_floor_ms", "exclusions")
    with pytest.raises(sd.DesignError, match=r"^analysis\.exclusions\[3\]\.rule: unknown rule"):
        sd.parse_design(tomllib.loads(toml.replace('"focus_loss"', '"focus"')))
    # stored as JSON with the study, read back by the analysis from the export's companion
    companion = tmp_path / "e.study.json"
    stored = json.loads(json.dumps(sd.Design.from_dict(json.loads(json.dumps(d.to_dict()))).to_dict()))
    companion.write_text(json.dumps({"design": stored}))
    cfg = load_config(companion=companion)
    assert cfg.exclusion_rules() == want and cfg.sources["exclusions"] == "study"
    assert cfg.rt_floor_ms == 250 and cfg.sources["rt_floor_ms"] == "study"
    assert cfg.sources["attention_threshold"] == "default"  # the list has no attention rule
    # the command line changes the rt_floor rule's parameter in place, and says so
    cli = load_config(companion=companion, rt_floor_ms=100)
    assert (
        cli.exclusion_rules()[1] == {"rule": "rt_floor", "ms": 100.0} and cli.sources["rt_floor_ms"] == "command line"
    )
    with pytest.raises(
        AnalysisError, match=r"attention_threshold: the study's exclusion list has no 'attention_checks'"
    ):
        load_config(companion=companion, attention_threshold=0.5)
    # a --config file with its own list replaces the study's
    conf = tmp_path / "c.toml"
    conf.write_text('[[analysis.exclusions]]\nrule = "attention_checks"\nmin_pass_rate = 0.5\n')
    assert load_config(conf, companion=companion).exclusion_rules() == ({"rule": "attention_checks",
                                                                         "min_pass_rate": 0.5},)
    # a design without a list: the stored study says so, and the analysis applies the default list
    plain = sd.parse_design(tomllib.loads(toml.split("[[analysis")[0]))
    assert plain.analysis.exclusions is None
    companion.write_text(json.dumps({"design": plain.to_dict()}))
    assert load_config(companion=companion).exclusion_rules() == ({"rule": "attention_checks", "min_pass_rate": 1.0},
                                                                  {"rule": "rt_floor", "ms": 250.0})


def test_trials_without_an_answer_in_the_window_are_missing_outcomes_not_failures(identify_df):
    """A study with a response window: a timed-out trial has no outcome; it is removed in its own row of
    the table, before the design's rules, and never counted as a wrong answer."""
    df = identify_df.copy()
    main_rows = df.index[(df["trial_kind"] == "main") & ~df["is_attention_check"]
                         & df["participant_state"].isin(COMPLETE) & (df["participant_review"] == "")]
    late = main_rows[::7]
    df["response_timed_out"] = pd.array([False] * len(df), dtype="boolean")
    df.loc[late, "response_timed_out"] = True
    df.loc[late, "target_hit"] = np.nan
    t = apply_exclusions(df, AnalysisConfig()).table
    assert list(t["rule"])[:4] == ["all main-trial responses in the export", "marked excluded in the app",
                                   "incomplete participant", "no answer within the response window"]
    assert t.loc[3, "responses_removed"] == len(late)
    res = apply_exclusions(df, AnalysisConfig())
    assert not res.data["response_timed_out"].any() and res.data["target_hit"].notna().all()
    # a study without a window (column empty or absent) gets no such row: older reports stay as they were
    df["response_timed_out"] = pd.array([pd.NA] * len(df), dtype="boolean")
    assert "no answer within the response window" not in list(apply_exclusions(df, AnalysisConfig()).table["rule"])
