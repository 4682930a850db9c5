"""`advlegit analyze` / `advlegit power` end to end, and bad input failing cleanly."""
import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from advlegit import main
from advlegit.analysis.simulate import write_export

FAST = ["--no-mixed-model", "--r-crosscheck", "off", "--n-boot", "100"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_full_report_on_all_task_types(mixed_export, tmp_path):
    out = tmp_path / "report"
    res = run("analyze", mixed_export, "-o", out, "--n-boot", "100")
    assert res.exit_code == 0, res.output
    for f in ("report.html", "report.md", "tables/exclusions.csv", "tables/identify_primary.csv",
              "tables/identify_pairwise_target_hit.csv", "tables/identify_logit_target_hit.csv",
              "tables/identify_mixed_model.csv", "tables/identify_agreement.csv", "tables/identify_human_model.csv",
              "tables/rate_friedman.csv", "tables/rate_wilcoxon.csv", "tables/rate_ordinal.csv",
              "tables/rate_agreement.csv", "tables/compare_pairs.csv", "tables/compare_bradley_terry.csv",
              "tables/compare_side_bias.csv", "figures/rates_target_hit.png", "figures/participant_lines.png",
              "figures/rate_vs_perturbation.png", "figures/budget_breakdown.png", "figures/bradley_terry.png",
              "figures/ratings.png", "tables/explain_primary.csv", "tables/explain_ordinal.csv",
              "figures/explain_ratings.png"):
        assert (out / f).is_file(), f
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "Holm" in md and "<table>" in html
    from advlegit.analysis.tasks import TASKS

    for task in TASKS:  # a pre-registered primary result for every task
        assert f"**Primary result** ({task}: " in md
    # every mixed model in the report has crossed participant and image intercepts (issue 13): the
    # participant-only linear mixed model for ratings is gone
    assert not (out / "tables/rate_lmm.csv").exists() and "Linear mixed model" not in md
    assert md.lower().count("crossed random intercepts for participant and image") == 3  # identify, rate, explain
    # every figure the markdown links exists
    for line in md.splitlines():
        if line.startswith("!["):
            assert (out / line.split("(")[1].rstrip(")")).is_file()
    excl = pd.read_csv(out / "tables/exclusions.csv")
    assert excl["responses_removed"].sum() > 0
    assert not list(tmp_path.glob(".report.tmp-*"))


def test_options_from_config_file_and_companion(identify_export, tmp_path):
    cfg = tmp_path / "design.toml"
    cfg.write_text('[analysis]\nattention_threshold = 0.0\nrt_floor_ms = 0\n'
                   'primary_contrast = ["adv", "normal"]\nalpha = 0.01\n')
    out = tmp_path / "r"
    assert run("analyze", identify_export, "-o", out, "--config", cfg, *FAST).exit_code == 0
    excl = pd.read_csv(out / "tables/exclusions.csv").set_index("rule")
    assert excl.loc["failed attention checks", "responses_removed"] == 0
    prim = pd.read_csv(out / "tables/identify_primary.csv")
    assert prim["contrast"].tolist() == ["adv vs normal"]
    md = (out / "report.md").read_text()
    # true provenance: the design file is the study's, --n-boot the command line's, the rest defaults
    assert "| alpha | 0.01 | study |" in md and "| n_boot | 100 | command line |" in md
    assert "| primary_contrast | adv, normal | study |" in md and "| seed | 0 | default |" in md
    assert "No study file" in md.split("## In plain words")[0]  # analysed without its .study.json
    # the study app's companion FILE.study.json supplies the pre-registered section
    export = tmp_path / "e.csv"
    export.write_bytes(Path(identify_export).read_bytes())
    export.with_suffix(".study.json").write_text(json.dumps(
        {"design": {"analysis": {"primary_contrast": "all_pairs", "reference_defense": "adv"}}}))
    out2 = tmp_path / "r2"
    assert run("analyze", export, "-o", out2, *FAST).exit_code == 0
    prim = pd.read_csv(out2 / "tables/identify_primary.csv")
    assert len(prim) == 3 and "p_holm" in prim  # all pairs, Holm-adjusted
    md2 = (out2 / "report.md").read_text()
    assert "| primary_contrast | all_pairs | study |" in md2 and "| reference_defense | adv | study |" in md2
    assert "| alpha | 0.05 | default |" in md2 and "No study file" not in md2


def _bad(tmp_path, frame, match, *extra):
    path = write_export(frame, tmp_path / "bad.csv")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous report")
    res = CliRunner().invoke(main, ["analyze", str(path), "-o", str(out), *FAST, *extra])
    assert res.exit_code != 0
    assert match in res.output, res.output
    assert "Traceback" not in res.output
    # the previous report is untouched and nothing half-written is left next to it
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out"]


def test_missing_columns(identify_df, tmp_path):
    _bad(tmp_path, identify_df.drop(columns=["participant_state"]), "missing required columns: participant_state")


def test_unknown_task_type(identify_df, tmp_path):
    d = identify_df.copy()
    d["task_type"] = "draw"
    _bad(tmp_path, d, "unknown task types: 'draw'")


def test_empty_study(identify_df, tmp_path):
    _bad(tmp_path, identify_df.iloc[:0], "no rows")


def test_single_defense(identify_df, tmp_path):
    d = identify_df[identify_df["defense"].isin(["normal", ""])]
    _bad(tmp_path, d, "only one defense ('normal')")


def test_all_responses_excluded(identify_df, tmp_path):
    _bad(tmp_path, identify_df, "responses were excluded", "--rt-floor-ms", "1e9")


def test_unknown_reference(identify_df, tmp_path):
    _bad(tmp_path, identify_df, "reference_defense 'distilled' is not among", "--reference-defense", "distilled")


def test_missing_file_and_database_without_study(tmp_path):
    res = CliRunner().invoke(main, ["analyze", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o")])
    assert res.exit_code != 0 and "not found" in res.output
    res = CliRunner().invoke(main, ["analyze", "--database", "sqlite:///x.db", "-o", str(tmp_path / "o")])
    assert res.exit_code != 0 and "--database needs --study" in res.output


def test_power_command(tmp_path):
    out = tmp_path / "power"
    res = run("power", "-o", out, "--effect-logodds", "gradreg_y=1.0", "-n", "10,40", "--sims", "30", "--trials", "12")
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "power.csv")
    assert table["n_participants"].tolist() == [10, 40]
    assert table["power"].iloc[1] > table["power"].iloc[0]  # more people, more power
    assert (out / "power.png").is_file() and (out / "power.md").is_file()


def test_power_from_pilot(identify_export, tmp_path):
    out = tmp_path / "power"
    res = run("power", "-o", out, "--pilot", identify_export, "-n", "20", "--sims", "10")
    assert res.exit_code == 0, res.output
    assert "pilot" in (out / "power.md").read_text()


def test_power_bad_effect(tmp_path):
    res = CliRunner().invoke(main, ["power", "-o", str(tmp_path / "p"), "--effect-logodds", "nosuch=1"])
    assert res.exit_code != 0 and "not in --defenses" in res.output


def test_unknown_primary_contrast(identify_df, tmp_path):
    _bad(tmp_path, identify_df, "primary_contrast names defenses not in the data: nosuch",
         "--primary-contrast", "nosuch", "normal")


def test_jsonl_export(identify_df, tmp_path):
    path = write_export(identify_df, tmp_path / "e.jsonl")
    out = tmp_path / "r"
    res = run("analyze", path, "-o", out, *FAST, "--primary-contrast", "adv", "normal")
    assert res.exit_code == 0, res.output
    assert pd.read_csv(out / "tables/identify_primary.csv")["contrast"].tolist() == ["adv vs normal"]


def test_without_r_the_report_says_skipped(identify_export, tmp_path, monkeypatch):
    import advlegit.analysis.rcheck as rcheck
    monkeypatch.setattr(rcheck.shutil, "which", lambda name: None)
    out = tmp_path / "r"
    res = run("analyze", identify_export, "-o", out, "--n-boot", "100")
    assert res.exit_code == 0, res.output
    md = (out / "report.md").read_text()
    assert "R cross-check: skipped (Rscript not found on PATH)" in md
    assert "R cross-check (lme4) skipped: R not available." in md
    assert "lme4_glmer_estimate" not in pd.read_csv(out / "tables/identify_mixed_model.csv").columns
    # and asking for it explicitly is an error, not a silent skip
    res = CliRunner().invoke(main, ["analyze", identify_export, "-o", str(tmp_path / "r2"), "--r-crosscheck", "on"])
    assert res.exit_code != 0 and "r_crosscheck = on but R is not usable" in res.output


def test_too_few_participants_is_a_note_in_the_report_not_a_crash(tmp_path):
    """A pilot with one participant per task still gets a report that says what is missing."""
    from advlegit.analysis.simulate import SimDesign, simulate

    parts = [simulate(SimDesign(task=t, n_participants=n), seed=1) for t, n in
             (("identify", 1), ("rate", 1), ("compare", 6))]
    export = write_export(pd.concat(parts, ignore_index=True), tmp_path / "pilot.csv")
    out = tmp_path / "r"
    res = run("analyze", export, "-o", out, *FAST)
    assert res.exit_code == 0, res.output
    md = (out / "report.md").read_text()
    assert "## identify: not analysed" in md and "## rate: not analysed" in md
    assert "Only 1 participant(s) left after exclusions (defenses: gradreg_y, normal)" in md
    assert "## compare: which of two images" in md  # the task with enough people is still analysed


def test_every_contract_column_is_required_or_optional(mixed_export, tmp_path):
    """An export without any of the columns the schema does not require (attack, budget, norms, group,
    simulated, ...) is analysed, not a KeyError: absent optional columns count as empty."""
    from advlegit.analysis.schema import COLUMN_NAMES, REQUIRED_ALWAYS, REQUIRED_BY_TASK

    required = set(REQUIRED_ALWAYS).union(*REQUIRED_BY_TASK.values())
    full = pd.read_csv(mixed_export, dtype=str, keep_default_na=False)
    optional = [c for c in COLUMN_NAMES if c not in required]
    assert "attack" in optional
    for name, frame in (("no-attack", full.drop(columns=["attack"])),
                        ("required-only", full.drop(columns=optional + [c for c in full if c.startswith("model_")]))):
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        res = CliRunner().invoke(main, ["analyze", str(path), "-o", str(tmp_path / name), *FAST])
        assert res.exit_code == 0, (name, res.output, res.exception)
        assert "Traceback" not in res.output
        assert (tmp_path / name / "report.md").exists()
