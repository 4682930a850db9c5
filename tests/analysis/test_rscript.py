"""analysis.R beside every report (analysis/rscript.py): run with Rscript where R with lme4 and ordinal is
installed, it applies the report's exclusions in the same order and its fixed effects match the report's."""
from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from advlegit import main
from advlegit.analysis.rcheck import r_available
from advlegit.analysis.simulate import SimDesign, simulate, write_export

RULES = """
[[analysis.exclusions]]
rule = "instruction_time"
min_s = 7
[[analysis.exclusions]]
rule = "straight_lining"
max_share = 0.8
[[analysis.exclusions]]
rule = "total_time"
min_s = 30
max_s = 600
[[analysis.exclusions]]
rule = "rt_floor"
ms = 500
[[analysis.exclusions]]
rule = "attention_checks"
min_pass_rate = 0.5
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A small identify + rate + compare export (different people), and its report."""
    tmp = tmp_path_factory.mktemp("rscript")
    parts = []
    for i, task in enumerate(("identify", "rate", "compare")):
        d = simulate(SimDesign(task=task, defenses=("normal", "gradreg_y"), effects={"gradreg_y": 0.8},
                               n_participants=14, trials_per_participant=12, n_attention=2, inattentive_rate=0.15,
                               incomplete_rate=0.1, models=(), study_id="r"), seed=40 + i)
        d["participant_id"] = task[:2] + d["participant_id"]
        parts.append(d)
    df = pd.concat(parts, ignore_index=True)
    liner = df.loc[(df["task_type"] == "rate") & df["participant_state"].isin(["data_complete", "code_issued"])
                   & (df["participant_review"] == ""), "participant_id"].iloc[0]
    df.loc[(df["participant_id"] == liner) & (df["trial_kind"] == "main"), "response"] = "4"
    export = write_export(df, tmp / "export.csv")
    (tmp / "c.toml").write_text(RULES)
    out = tmp / "report"
    res = CliRunner().invoke(main, ["analyze", str(export), "-o", str(out), "--config", str(tmp / "c.toml"),
                                    "--r-crosscheck", "off", "--n-boot", "60"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return export, out


def test_every_report_has_an_r_script_with_the_configured_rules_in_order(report):
    _, out = report
    text = (out / "analysis.R").read_text()
    labels = ["instructions read too fast", "straight-lining", "total time outside window",
              "response faster than RT floor", "failed attention checks"]
    where = [text.index(f'drop_rows("{label}"') for label in labels]
    assert where == sorted(where)
    assert "glmer(" in text and "clmm(" in text and str(out.parent / "export.csv") in text
    table = pd.read_csv(out / "tables" / "exclusions.csv")
    assert list(table["rule"].iloc[3:]) == labels
    assert (table["responses_removed"].iloc[1:] > 0).sum() >= 4


def test_r_script_reproduces_the_report(report, tmp_path):
    ok, why = r_available()
    if not ok:
        pytest.skip(f"R with lme4 and ordinal is not installed ({why}); scripts/system-deps.sh installs it")
    export, out = report
    res = subprocess.run(["Rscript", str(out / "analysis.R"), str(export), str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    ours = pd.read_csv(out / "tables" / "exclusions.csv")
    theirs = pd.read_csv(tmp_path / "exclusions.csv")
    pd.testing.assert_frame_equal(ours.fillna(""), theirs.fillna(""), check_dtype=False)
    fe = pd.read_csv(tmp_path / "fixed_effects.csv").fillna("")
    fe["key"] = fe["task"] + "|" + fe["model"].str.split(":").str[0] + "|" + fe["contrast"] + "|" + fe["term"]
    r = fe.set_index("key")["estimate"]
    pairs = []  # (what, report's estimate, R's)
    for row in pd.read_csv(out / "tables" / "identify_mixed_model.csv").itertuples():
        pairs.append(("identify mixed " + row.term, row.estimate, r[f"identify|mixed||{row.term}"]))
    for row in pd.read_csv(out / "tables" / "rate_ordinal.csv").itertuples():
        pairs.append(("rate mixed " + row.term, row.log_odds, r[f"rate|mixed||{row.term}"]))
    for row in pd.read_csv(out / "tables" / "identify_primary.csv").itertuples():
        a = row.contrast.split(" vs ")[0]
        pairs.append(("identify primary", row.log_or, r[f"identify|primary|{row.contrast}|defense:{a}"]))
    for row in pd.read_csv(out / "tables" / "rate_primary.csv").itertuples():
        a = row.contrast.split(" vs ")[0]
        pairs.append(("rate primary", row.mean_diff, r[f"rate|primary|{row.contrast}|defense:{a}"]))
    for row in pd.read_csv(out / "tables" / "compare_primary.csv").itertuples():
        pairs.append(("compare primary", row.log_odds, r[f"compare|primary|{row.contrast}|Intercept"]))
    assert len(pairs) >= 6
    for what, ours_, theirs_ in pairs:
        assert np.isfinite(ours_) and abs(ours_ - theirs_) < 0.01, (what, ours_, theirs_)
