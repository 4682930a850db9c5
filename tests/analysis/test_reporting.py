"""The report side of issues 13 and 11: α everywhere, true option provenance, a primary result for every
task, robust design matrices, the plain-words section, stimulus designs and controls, simulated data
labelled, and the pre-registered plan with its hash and deviations."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from advlegit import main
from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.identify import defense_model, identify_frame, odds_ratio_table, primary_test
from advlegit.analysis.report import _cell, render_html
from advlegit.analysis.simulate import SimDesign, simulate, write_export

FAST = ["--no-mixed-model", "--r-crosscheck", "off", "--n-boot", "60"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def small(task="identify", seed=1, **kw):
    base = dict(task=task, defenses=("normal", "gradreg_y", "adv"), effects={"gradreg_y": 0.9},
                n_participants=24, trials_per_participant=12, n_attention=2, budgets=(0.3,), models=())
    base.update(kw)
    return simulate(SimDesign(**base), seed=seed)


def main_frame(**kw) -> pd.DataFrame:
    d = small(**kw)
    return identify_frame(d[(d["trial_kind"] == "main") & ~d["is_attention_check"]])


@pytest.fixture(scope="module")
def identify_csv(tmp_path_factory):
    return write_export(small(), tmp_path_factory.mktemp("e") / "identify.csv")


def _md(out: Path) -> str:
    return (out / "report.md").read_text()


# --- α everywhere -----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", [None, "each_vs_reference"])
def test_alpha_drives_every_interval_and_caption(identify_csv, tmp_path, family):
    out = tmp_path / "r"
    extra = ["--primary-family", family] if family else ["--primary-contrast", "gradreg_y", "normal"]
    res = run("analyze", identify_csv, "-o", out, "--alpha", "0.01", *FAST, *extra)
    assert res.exit_code == 0, res.output
    md = _md(out)
    assert "95%" not in md and "0.975" not in md
    assert "99% interval" in md or "99% CI" in md
    prim = pd.read_csv(out / "tables/identify_primary.csv")
    for r in prim.itertuples():  # the headline interval and the decision agree
        excludes_one = r.or_ci_low > 1 or r.or_ci_high < 1
        assert bool(r.significant) == excludes_one, r
    # the primary test's own interval is 1 - alpha
    d = main_frame()
    r01 = primary_test(d, "gradreg_y", "normal", alpha=0.01)
    r05 = primary_test(d, "gradreg_y", "normal", alpha=0.05)
    assert (r01["ci_high"] - r01["ci_low"]) > (r05["ci_high"] - r05["ci_low"])
    assert (r01["ci_low"] > 0 or r01["ci_high"] < 0) == (r01["p"] < 0.01)


# --- provenance and the missing study file ------------------------------------------------------------
def test_provenance_is_true_for_every_option(identify_csv, tmp_path):
    export = tmp_path / "e.csv"
    export.write_bytes(Path(identify_csv).read_bytes())
    export.with_suffix(".study.json").write_text(json.dumps(
        {"design": {"task": "identify", "defenses": ["normal", "gradreg_y", "adv"],
                    "analysis": {"attention_threshold": 0.5, "rt_floor_ms": 200.0, "primary_outcome": "target_hit",
                                 "primary_contrast": "all_pairs", "reference_defense": "normal"}}}))
    out = tmp_path / "r"
    assert run("analyze", export, "-o", out, *FAST).exit_code == 0
    rows = {m.group(1): (m.group(2), m.group(3))
            for m in re.finditer(r"^\| (\w+) \| ([^|]*) \| ([\w ]+) \|$", _md(out), re.M)}
    assert rows["primary_contrast"] == ("all_pairs", "study")  # set by the study: not "default"
    assert rows["attention_threshold"] == ("0.5", "study")
    assert rows["n_boot"] == ("60", "command line")
    assert rows["alpha"] == ("0.05", "default")  # the code default is never labelled as the study's
    assert "No study file" not in _md(out)


def test_one_name_and_default_per_option_shared_with_the_design():
    from advlegit.analysis.config import ALIASES, load_config
    cfg = AnalysisConfig()
    assert cfg.attention_threshold == 1.0 and cfg.primary_contrast == "each_vs_reference"
    assert cfg.reference_defense == "" and cfg.primary_outcome == ""
    assert ALIASES == {"attention_min_pass_rate": "attention_threshold"}
    # every option of the study design's [analysis] section is an analysis option of the same name
    design_options = {"attention_threshold", "rt_floor_ms", "primary_outcome", "primary_contrast",
                      "reference_defense"}
    assert design_options <= set(cfg.values())
    c = load_config(None, None, attention_min_pass_rate=0.3)
    assert c.attention_threshold == 0.3 and c.sources["attention_threshold"] == "command line"


# --- a primary result for every task ------------------------------------------------------------------
def test_every_task_has_a_primary_result(tmp_path):
    from advlegit.analysis.tasks import TASKS

    parts = []
    for i, task in enumerate(TASKS):
        d = small(task, seed=20 + i)
        d["participant_id"] = task[:2] + d["participant_id"]
        parts.append(d)
    path = write_export(pd.concat(parts, ignore_index=True), tmp_path / "mixed.csv")
    out = tmp_path / "r"
    assert run("analyze", path, "-o", out, *FAST, "--alpha", "0.01").exit_code == 0
    md = _md(out)
    assert "95%" not in md  # every section states the level alpha gives, none the habitual 95%
    for section in md.split("\n## ")[1:]:
        if section.startswith(tuple(TASKS)):
            assert "99%" in section, section.splitlines()[0]
    for task in TASKS:
        assert re.search(rf"\*\*Primary result\*\* \({task}: ", md), task
        prim = pd.read_csv(out / f"tables/{task}_primary.csv")
        assert len(prim) == 2 and "p_holm" in prim  # each_vs_reference over three defenses
    # Primary-result lines only for the pre-registered family: 2 contrasts × every task
    assert md.count("**Primary result**") == 2 * len(TASKS)
    rate = pd.read_csv(out / "tables/rate_primary.csv").set_index("contrast")
    assert rate.loc["gradreg_y vs normal", "mean_diff"] > 0  # the simulated effect shows
    plain = md.split("## In plain words")[1].split("## Primary results")[0]
    assert "**Identify.**" in plain and "**Rate.**" in plain and "**Compare.**" in plain


# --- robust design matrices ------------------------------------------------------------------------------
def test_constant_budget_is_dropped_with_a_note():
    d = main_frame()
    d["budget"] = 0.3  # one float value: std() > 0 used to let it in beside the intercept
    fit, X = defense_model(d, "target_hit", "normal", covariates=True)
    assert "budget" not in X.columns
    assert any("budget left out: constant" in n for n in fit.notes)
    t = odds_ratio_table(fit, 0.05)
    assert t["se"].max() < 5 and t["odds_ratio"].max() < 100
    d["norm_copy"] = d["norm_l2"] * 2.0  # collinear with norm_l2
    fit, X = defense_model(d, "target_hit", "normal", covariates=("norm_l2", "norm_copy"))
    assert "norm_copy" not in X.columns and any("collinear" in n for n in fit.notes)


def test_separation_gives_empty_cells_not_absurd_numbers():
    d = main_frame()
    d.loc[d["defense"] == "adv", "target_hit"] = 0.0  # no hits at all: separation
    fit, _ = defense_model(d, "target_hit", "normal")
    t = odds_ratio_table(fit, 0.05).set_index("term")
    assert np.isnan(t.loc["defense:adv", "se"]) and "separation" in " ".join(fit.notes)
    r = primary_test(d, "adv", "normal")
    assert not r["converged"] and np.isnan(r["p"])


# --- primary_test: the simulation test's entry point -----------------------------------------------------
def test_primary_test_signature_and_norm_adjustment():
    # (its speed is a benchmark's business, benchmarks/bench_analysis.py: never a timed assertion here)
    rng = np.random.default_rng(5)
    d = simulate(SimDesign(defenses=("normal", "gradreg_y"), n_participants=125, trials_per_participant=24,
                           models=()), seed=3)
    d = identify_frame(d[d["trial_kind"] == "main"])
    assert len(d) == 3000
    # an observer who sees only the L2 norm, and a defense whose images have larger norms
    d["norm_l2"] = np.where(d["defense"] == "gradreg_y", 5.5, 4.0) + rng.normal(0, 0.8, len(d))
    d["target_hit"] = (rng.random(len(d)) < 1 / (1 + np.exp(-(-4 + 0.7 * d["norm_l2"])))).astype(float)
    raw = primary_test(d, "gradreg_y", "normal", "target_hit")
    adj = primary_test(d, "gradreg_y", "normal", "target_hit", adjust_for=("norm_l2",), cluster="participant+group")
    one = primary_test(d, "gradreg_y", "normal", "target_hit", cluster="participant")
    for r in (raw, adj, one):
        assert {"p", "log_or", "ci_low", "ci_high"} <= set(r)
    assert raw["p"] < 0.001 and adj["p"] > 0.01  # the confound is real; adjusting removes it
    assert adj["adjusted_for"] == ["norm_l2"] and one["cluster"] == "participant"
    # controls never enter the primary test
    c = d.copy()
    c["stimulus_kind"] = np.where(np.arange(len(c)) % 3 == 0, "control_flip", "adversarial")
    assert primary_test(c, "gradreg_y", "normal")["n"] == int((c["stimulus_kind"] == "adversarial").sum())


# --- stimulus design, controls, simulated data -----------------------------------------------------------
def _with_controls(seed=4) -> pd.DataFrame:
    return small(seed=seed, n_participants=30, trials_per_participant=18, controls=("control_flip", "control_noise"),
                 control_share=0.2, control_effect=-1.8)


def test_controls_section_and_stated_design(tmp_path):
    d = _with_controls()
    path = write_export(d, tmp_path / "c.csv")
    path.with_suffix(".study.json").write_text(json.dumps(
        {"design": {"task": "identify", "analysis": {}}, "stimulus_design": "matched_norm"}))
    out = tmp_path / "r"
    assert run("analyze", path, "-o", out, *FAST).exit_code == 0
    md = _md(out)
    assert "Stimulus design: matched_norm" in md and "same perturbation size" in md
    assert "## Adversarial images against their own controls" in md and (out / "figures/controls.png").is_file()
    ctab = pd.read_csv(out / "tables/controls_contrast.csv")
    assert set(ctab["control"]) == {"control_flip", "control_noise"} and len(ctab) == 6
    ok = ctab["odds_ratio"].notna()  # a control cell without any hit is separated: left empty, not absurd
    assert ok.sum() >= 4 and (ctab.loc[ok, "odds_ratio"] > 1).all() and (ctab.loc[ok, "or_ci_high"] < 1e3).all()
    prim = pd.read_csv(out / "tables/identify_primary.csv")
    assert (prim["adjusted_for"] == "nothing").all()  # matched_norm fixes the norm
    assert "adversarial stimuli only" in md


def test_unknown_design_is_said_and_norm_adjusted(identify_csv, tmp_path):
    out = tmp_path / "r"
    assert run("analyze", identify_csv, "-o", out, *FAST).exit_code == 0
    md = _md(out)
    assert "Stimulus design: unknown" in md and "does not say how the perturbation sizes were chosen" in md
    assert (pd.read_csv(out / "tables/identify_primary.csv")["adjusted_for"] == "norm_l2").all()


def test_simulated_responses_are_said_in_the_first_sentence(tmp_path):
    d = small(simulated_share=0.3)
    assert 0 < d["simulated"].sum() < len(d)
    path = write_export(d, tmp_path / "s.csv")
    out = tmp_path / "r"
    assert run("analyze", path, "-o", out, *FAST).exit_code == 0
    body = _md(out).split("\n", 1)[1].strip()
    first = body.split(";")[0]
    assert first.startswith("**This report contains simulated data") and "simulated participants" in first
    d["simulated"] = pd.array([False] * len(d), dtype="boolean")
    path = write_export(d, tmp_path / "s2.csv")
    assert run("analyze", path, "-o", tmp_path / "r2", *FAST).exit_code == 0
    assert "simulated data" not in _md(tmp_path / "r2")


# --- numbers for people, tables that scroll --------------------------------------------------------------
def test_numbers_rounded_for_people_and_wide_tables_scroll():
    assert _cell("estimate", 5.55e-17) == "0.000" and _cell("estimate", -1e-9) == "0.000"
    assert "e+" not in _cell("odds_ratio", 4.12e12) and _cell("p", 1e-9) == "< 0.001"
    html = render_html("| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert '<div class="table-scroll"><table>' in html and "overflow-x:auto" in html


# --- the pre-registered plan --------------------------------------------------------------------------------
def test_prereg_plan_hash_and_deviations(identify_csv, tmp_path):
    plan = tmp_path / "plan.md"
    res = run("prereg", EXAMPLES / "design-identify.toml", "-o", plan)
    assert res.exit_code == 0, res.output
    text = plan.read_text()
    h = re.search(r"Plan SHA-256: `([0-9a-f]{64})`", text).group(1)
    assert h in res.output and "each defense against the reference defense" in text
    # the same design file gives the same plan and hash
    assert run("prereg", EXAMPLES / "design-identify.toml", "-o", tmp_path / "p2.md").exit_code == 0
    assert (tmp_path / "p2.md").read_text() == text
    out = tmp_path / "r"
    res = run("analyze", identify_csv, "-o", out, "--plan", plan, "--alpha", "0.01", *FAST)
    assert res.exit_code == 0, res.output
    md = _md(out)
    assert h in md and "Deviations from the pre-registered plan" in md
    devs = md.split("Deviations from the pre-registered plan:**")[1].split("\n\n")[1]
    assert "option `alpha`: planned 0.05, used 0.01 (from command line)" in devs
    assert "option `rt_floor_ms`: planned 250" in devs  # the export was analysed with the default
    assert "defenses" in devs  # the plan's fgsm_adv/gradreg_uniform are absent, adv is extra
    # a plan edited after hashing is refused
    plan.write_text(text.replace('"alpha": 0.05', '"alpha": 0.1'))
    res = CliRunner().invoke(main, ["analyze", str(identify_csv), "-o", str(tmp_path / "r3"), "--plan", str(plan),
                                    *FAST])
    assert res.exit_code != 0 and "changed after it was hashed" in res.output


def test_plan_rebuilt_from_the_companion_has_the_same_hash(identify_csv, tmp_path):
    import tomllib

    from advlegit.analysis import prereg
    doc = tomllib.loads((EXAMPLES / "design-identify.toml").read_text())
    h = prereg.plan_hash(prereg.plan_from_toml(EXAMPLES / "design-identify.toml"))
    design = {"name": doc["study"]["name"], "task": "identify", "defenses": doc["study"]["defenses"],
              "analysis": doc["analysis"]}
    assert prereg.plan_hash(prereg.plan_from_companion({"design": design})) == h
    export = tmp_path / "e.csv"
    export.write_bytes(Path(identify_csv).read_bytes())
    export.with_suffix(".study.json").write_text(json.dumps({"design": design}))
    out = tmp_path / "r"
    assert run("analyze", export, "-o", out, *FAST).exit_code == 0
    md = _md(out)
    assert h in md and "rebuilt from the design" in md


def test_design_from_the_export_column_and_norm_fixed_only_for_matched_norm():
    from advlegit.analysis import designs

    assert designs.detect(small(stimulus_design="fixed_budget")) == (
        "fixed_budget",
        "the export's stimulus_design column",
    )
    assert designs.detect(small()) == ("", "not recorded")
    assert designs.detect(small(), "ross")[0] == "ross"
    assert [designs.norm_fixed(x) for x in designs.DESIGNS] == [False, True, False, False]
    for name in designs.DESIGNS:
        assert designs.estimand_text(name)  # every design has its estimand in plain words


# --- one options type shared with the study design (contracts/analysis_options.py) -------------------
def _design_doc(analysis: dict) -> dict:
    return {"study": {"name": "t", "task": "identify", "trials": 6, "target_sample_size": 10},
            "consent": {"text": "ok"}, "instructions": {"text": "go"}, "analysis": analysis}


def test_design_parser_and_analysis_share_one_options_type(identify_csv, tmp_path):
    sd = pytest.importorskip("advlegit.study_app.design")
    from advlegit.contracts import analysis_options as ao
    assert sd.Analysis is ao.AnalysisOptions  # one type, not two copies that can drift
    for name in ao.OPTION_NAMES:
        assert getattr(AnalysisConfig(), name) == ao.DEFAULTS[name], name
    # the study app parses with the contract: an older spelling is accepted, a bad value is refused with
    # the same words the analysis uses
    d = sd.parse_design(_design_doc({"attention_min_pass_rate": 0.5, "rt_floor_ms": 150}))
    assert d.analysis.attention_threshold == 0.5 and d.analysis.set_in_design == ("attention_threshold", "rt_floor_ms")
    with pytest.raises(sd.DesignError, match=r"^analysis\.rt_floor_ms: must be >= 0"):
        sd.parse_design(_design_doc({"rt_floor_ms": -1}))
    with pytest.raises(Exception, match=r"rt_floor_ms: must be >= 0"):
        AnalysisConfig(rt_floor_ms=-1)
    assert sd.parse_design(_design_doc({})).analysis.reference_defense == ""  # "" stays: one default rule
    # true provenance through the companion: what the design file set is "study", the rest "default"
    export = tmp_path / "e.csv"
    export.write_bytes(Path(identify_csv).read_bytes())
    export.with_suffix(".study.json").write_text(json.dumps({"design": d.to_dict()}))
    out = tmp_path / "r"
    assert run("analyze", export, "-o", out, *FAST).exit_code == 0
    rows = {m.group(1): (m.group(2), m.group(3))
            for m in re.finditer(r"^\| (\w+) \| ([^|]*) \| ([\w ]+) \|$", _md(out), re.M)}
    assert rows["attention_threshold"] == ("0.5", "study") and rows["rt_floor_ms"] == ("150.0", "study")
    assert rows["primary_contrast"] == ("each_vs_reference", "default")
    assert rows["reference_defense"][1] == "default" and rows["primary_outcome"][1] == "default"
    assert "set_in_design" not in rows


# --- found by walking through the demo's report as a reviewer ------------------------------------------
def _matched_norm_export(d: pd.DataFrame, path: Path) -> Path:
    path = write_export(d, path)
    path.with_suffix(".study.json").write_text(json.dumps(
        {"design": {"task": "identify", "analysis": {}}, "stimulus_design": "matched_norm"}))
    return path


def test_separated_control_contrast_is_explained_not_dropped(tmp_path):
    d = _with_controls()
    d.loc[(d["defense"] == "normal") & (d["stimulus_kind"] == "control_noise"), "target_hit"] = False
    out = tmp_path / "r"
    assert run("analyze", _matched_norm_export(d, tmp_path / "c.csv"), "-o", out, *FAST).exit_code == 0
    ctab = pd.read_csv(out / "tables/controls_contrast.csv", keep_default_na=False).set_index(["defense", "control"])
    row = ctab.loc[("normal", "control_noise")]
    assert row["odds_ratio"] == "" and row["note"] == "not estimable, separation: control 0%"
    assert (ctab.loc[ctab["odds_ratio"] != "", "note"] == "").all()
    md = _md(out)
    plain = md.split("## Primary results")[0]
    assert "normal vs control_noise:" in plain and "not estimable, separation: control 0%" in plain
    assert "An empty odds ratio is not estimable" in md


def test_perturbation_size_note_says_what_the_primary_test_did(identify_csv, tmp_path):
    out = tmp_path / "m"
    assert run("analyze", _matched_norm_export(small(), tmp_path / "m.csv"), "-o", out, *FAST).exit_code == 0
    md = _md(out)
    assert "the primary test adjusts for" not in md
    assert "The matched_norm design makes the images of each (source, target) group the same size" in md
    out = tmp_path / "u"
    assert run("analyze", identify_csv, "-o", out, *FAST).exit_code == 0
    assert "primary test adjusts for norm_l2." in _md(out)


def test_budget_chosen_per_image_is_not_a_breakdown(tmp_path):
    d = small()
    per_image = 0.2 + 0.001 * d.groupby("stimulus_id").ngroup()
    d["budget"] = np.where(d["budget"].notna(), per_image, np.nan)
    assert d["budget"].nunique() > 8
    out = tmp_path / "r"
    assert run("analyze", _matched_norm_export(d, tmp_path / "b.csv"), "-o", out, *FAST).exit_code == 0
    assert not (out / "tables/identify_rates_by_budget.csv").exists()
    assert not (out / "figures/budget_breakdown.png").exists()
    assert "budget" not in pd.read_csv(out / "tables/identify_perturbation_size.csv").columns
    assert "ε was chosen per image" in _md(out)
    logit = pd.read_csv(out / "tables/identify_logit_target_hit.csv")
    assert "budget" not in set(logit["term"]) and "target_hit ~ defense + attack + norm_l2" in _md(out)
    d["budget"] = np.where(d["budget"].notna(), np.where(d.index % 2, 0.1, 0.3), np.nan)  # a design factor
    out = tmp_path / "f"
    assert run("analyze", _matched_norm_export(d, tmp_path / "f.csv"), "-o", out, *FAST).exit_code == 0
    assert (out / "tables/identify_rates_by_budget.csv").is_file() and (out / "figures/budget_breakdown.png").is_file()


@pytest.mark.parametrize("task", ["identify", "rate"])
def test_agreement_without_repeated_images_says_why_it_is_empty(tmp_path, task):
    d = small(task=task)
    d["stimulus_id"] = d["stimulus_id"] + "-" + d["participant_id"].astype(str)  # every image seen once
    out = tmp_path / "r"
    assert run("analyze", write_export(d, tmp_path / "a.csv"), "-o", out, *FAST).exit_code == 0
    assert (pd.read_csv(out / f"tables/{task}_agreement.csv")["n_images"] == 0).all()
    assert "No image was seen by two or more people" in _md(out)
    out = tmp_path / "s"  # images that repeat: the table has numbers and no such sentence
    assert run("analyze", write_export(small(task=task), tmp_path / "b.csv"), "-o", out, *FAST).exit_code == 0
    assert "No image was seen by two or more people" not in _md(out)


def test_plain_words_name_every_defense_tied_for_the_most_target_answers():
    from advlegit.analysis.plain import identify_answer

    def rates(*pairs):
        return [{"defense": d, "rate": r, "ci_low": r - 0.2, "ci_high": r + 0.1} for d, r in pairs]

    prim = [{"contrast": f"{d} vs normal", "odds_ratio": 2.0, "or_ci_low": 0.5, "or_ci_high": 8.0, "p": 0.3,
             "p_holm": 1.0, "converged": True, "significant": False} for d in ("distilled", "gradreg_uniform")]
    summary = {"rates": {"identify": rates(("normal", 0.5), ("distilled", 0.75), ("gradreg_uniform", 0.75))},
               "reference": {"identify": "normal"}, "primary": {"identify": prim}}
    text = identify_answer(summary, AnalysisConfig())[0]
    assert re.search(r"came with \*\*(distilled|gradreg_uniform)\*\* and \*\*(distilled|gradreg_uniform)\*\* \(tied\)",
                     text)
    assert "the odds of naming the target with **" in text
    summary["rates"]["identify"] = rates(("normal", 0.5), ("distilled", 0.8), ("gradreg_uniform", 0.75))
    text = identify_answer(summary, AnalysisConfig())[0]
    assert "came with **distilled**: 30 percentage points" in text and "tied" not in text


@pytest.mark.parametrize("task, measure", [("rate", "1-7 rating"), ("compare", "shown side by side")])
def test_a_stated_estimand_about_naming_says_how_this_task_measures_it(tmp_path, task, measure):
    path = write_export(small(task=task), tmp_path / f"{task}.csv")
    path.with_suffix(".study.json").write_text(json.dumps(
        {"design": {"task": task, "analysis": {}}, "stimulus_design": "matched_norm",
         "estimand": "How often images of the same size are seen as the target class."}))
    out = tmp_path / "r"
    assert run("analyze", path, "-o", out, *FAST).exit_code == 0
    line = next(x for x in _md(out).splitlines() if x.startswith("**Stimulus design"))
    assert "seen as the target class." in line and "this study measures it by" in line and measure in line
