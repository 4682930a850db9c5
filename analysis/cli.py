"""`advlegit analyze` and `advlegit power` (click group merged into the top-level CLI)."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from advlegit.analysis.errors import AnalysisError
from advlegit.contracts.cli_flags import effect_option, output_option

log = logging.getLogger(__name__)
cli = click.Group()


def _config(config_path, companion=None, **overrides):
    from advlegit.analysis.config import load_config
    return load_config(Path(config_path) if config_path else None, companion=companion, **overrides)


def _load(export_file: str | None, database: str | None, study: str | None, workdir: Path):
    """The export frame, and the companion .study.json that may carry the study's [analysis]."""
    from advlegit.analysis.load import read_export
    if database:
        if export_file:
            raise AnalysisError("give either an export FILE or --database/--study, not both")
        if not study:
            raise AnalysisError("--database needs --study ID")
        path = _export_from_database(database, study, workdir)
    elif export_file:
        path = Path(export_file)
    else:
        raise AnalysisError("give an export FILE (CSV or JSONL) or --database URL --study ID")
    return read_export(path), path.with_suffix(".study.json")


def _export_from_database(database: str, study: str, workdir: Path) -> Path:
    """Run the study app's own `advlegit export` in a child process (so Flask never loads here);
    it writes the same rows as a file export, plus FILE.study.json with the design."""
    import os
    import subprocess
    import sys

    out = workdir / "export.csv"
    env = dict(os.environ, DATABASE_URL=database)
    cmd = [sys.executable, "-c", "import advlegit; advlegit.main()", "export", "--study", study, "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0 or not out.is_file():
        lines = [ln for ln in res.stderr.strip().splitlines() if ln and not ln.startswith("(Background")]
        why = lines[-1] if lines else "no output"
        raise AnalysisError(f"could not export study {study!r} from {database}: {why}")
    return out


def _plan_summary(plan_path, companion_doc: dict, cfg, result, design: str) -> dict | None:
    """The plan the report names: from --plan (hash checked), else rebuilt from the companion's design."""
    from advlegit.analysis import prereg
    if plan_path:
        plan, h = prereg.read_plan(Path(plan_path))
        source = f"from `{Path(plan_path).name}`"
    else:
        plan = prereg.plan_from_companion(companion_doc)
        if plan is None:
            return None
        h = prereg.plan_hash(plan)
        source = "rebuilt from the design in the export's companion file"
    summ = result.summary
    defenses = summ.get("defenses", {})
    devs = prereg.deviations(plan, cfg, summ.get("tasks", []), defenses, design, summ.get("reference"))
    stated = companion_doc.get("analysis_plan_sha256") or companion_doc.get("plan_sha256")
    if stated and stated != h:
        devs.insert(0, f"the study's companion names plan {stated}, but the plan used here hashes to {h}")
    return {"sha256": h, "source": source, "deviations": devs}


@cli.command("analyze")
@click.argument("export_file", required=False, type=click.Path(dir_okay=False))
@output_option("Report directory (replaced atomically when the report is complete).", file_okay=False, required=True)
@click.option("--database", help="Read the study's responses from this database URL instead of a file.")
@click.option("--study", help="Study id (with --database).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="TOML file with an [analysis] table (e.g. the study design file).")
@click.option("--plan", "plan_path", type=click.Path(exists=True, dir_okay=False),
              help="Pre-registered plan from `advlegit prereg`: its hash is checked and every deviation listed.")
@click.option("--reference-defense", help="Defense every other is contrasted with.")
@click.option("--primary-contrast", nargs=2, help="Pre-registered primary contrast: TREATMENT CONTROL.")
@click.option("--primary-family", type=click.Choice(["each_vs_reference", "all_pairs"]),
              help="Pre-registered primary family instead of one contrast (Holm within it).")
@click.option("--attention-threshold", "--attention-min-pass-rate", "attention_threshold", type=float,
              help="Keep participants passing at least this share of attention checks.")
@click.option("--rt-floor-ms", type=float)
@click.option("--alpha", type=float)
@click.option("--n-boot", type=int, help="Bootstrap resamples.")
@click.option("--seed", type=int)
@click.option("--r-crosscheck", type=click.Choice(["auto", "on", "off"]))
@click.option("--no-mixed-model", is_flag=True, default=None, help="Skip the mixed-model fits.")
def analyze_cmd(export_file, output, database, study, config_path, plan_path, reference_defense, primary_contrast,
                primary_family, attention_threshold, rt_floor_ms, alpha, n_boot, seed, r_crosscheck,
                no_mixed_model):
    """Analyse an export: report.html, report.md, tables/*.csv, figures/*.png in OUTPUT."""
    import tempfile

    from advlegit.analysis import models, rscript
    from advlegit.analysis.config import read_companion, study_info
    from advlegit.analysis.pipeline import run_analysis
    from advlegit.analysis.report import atomic_dir, write_report
    try:
        if primary_contrast and primary_family:
            raise AnalysisError("give either --primary-contrast or --primary-family, not both")
        with tempfile.TemporaryDirectory() as work:
            df, companion = _load(export_file, database, study, Path(work))
            cfg = _config(config_path, companion=companion, reference_defense=reference_defense,
                          primary_contrast=tuple(primary_contrast) if primary_contrast else primary_family,
                          attention_threshold=attention_threshold, rt_floor_ms=rt_floor_ms,
                          alpha=alpha, n_boot=n_boot, seed=seed, r_crosscheck=r_crosscheck,
                          mixed_model=False if no_mixed_model else None)
            info = study_info(companion, Path(config_path) if config_path else None)
            companion_doc, _ = read_companion(companion)
        with atomic_dir(Path(output)) as tmp:
            (tmp / "figures").mkdir()
            result = run_analysis(df, cfg, tmp / "figures", info)
            # the same exclusions and models in R, for reviewers (analysis/rscript.py)
            rscript.write(tmp / "analysis.R", cfg, result.summary,
                          str(Path(export_file).resolve()) if export_file else "export.csv")
            plan = _plan_summary(plan_path, companion_doc, cfg, result, result.summary["design"]["name"])
            if plan is not None:
                result.summary["plan"] = plan
            write_report(result.sections, cfg, export_file or f"{database} study {study}", result.summary, tmp,
                         info)
            # every model in the Python API's one vocabulary (docs/api.md): the objects the tables came from
            models.tidy_table(result.results).to_csv(tmp / "tables" / "models.csv", index=False)
    except AnalysisError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"report written to {Path(output) / 'report.html'}")


@cli.command("prereg")
@click.argument("design_file", type=click.Path(dir_okay=False))
@output_option("The plan (Markdown).", dir_okay=False, required=True)
def prereg_cmd(design_file, output):
    """Write the pre-registered analysis plan of a study design, with its SHA-256."""
    from advlegit.analysis import prereg
    try:
        plan = prereg.plan_from_toml(Path(design_file))
        Path(output).write_text(prereg.render(plan), encoding="utf-8")
    except AnalysisError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc}") from None
    click.echo(f"plan written to {output}\nSHA-256 {prereg.plan_hash(plan)}")


@cli.command("power")
@output_option("Directory for power.csv, power.png and power.md.", file_okay=False, required=True)
@click.option("--pilot", type=click.Path(exists=True, dir_okay=False),
              help="Pilot export: effects and variance components are estimated from it.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--defenses", default="normal,gradreg_y", show_default=True, help="Comma-separated.")
@effect_option("logodds", "Conditional log-odds ratio vs the reference (repeatable).", old="--effect")
@click.option("--baseline-rate", type=float, default=0.25, show_default=True)
@click.option("--participant-sd", type=float, default=0.8, show_default=True)
@click.option("--image-sd", type=float, default=0.5, show_default=True)
@click.option("--trials", type=int, default=24, show_default=True, help="Main trials per participant.")
@click.option("-n", "--n-participants", "ns", default="20,40,60,80,120", show_default=True)
@click.option("--sims", type=int, default=200, show_default=True, help="Simulated studies per size.")
@click.option("--target-power", type=float, default=0.8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def power_cmd(output, pilot, config_path, defenses, effects, baseline_rate, participant_sd, image_sd,
              trials, ns, sims, target_power, seed):
    """Simulation-based power of the primary contrast against the number of participants."""
    from advlegit.analysis import power
    from advlegit.analysis.report import atomic_dir
    try:
        cfg = _config(config_path)
        sizes = sorted({int(x) for x in ns.split(",") if x.strip()})
        if not sizes or min(sizes) < 2:
            raise AnalysisError("--n-participants needs sizes >= 2")
        if sims < 10:
            raise AnalysisError("--sims must be at least 10")
        if pilot:
            from advlegit.analysis.load import read_export
            design = power.design_from_pilot(read_export(pilot), cfg, trials)
        else:
            design = power.PowerDesign.build(defenses=tuple(x.strip() for x in defenses.split(",")),
                                             effects=effects, baseline_rate=baseline_rate,
                                             participant_sd=participant_sd, image_sd=image_sd,
                                             trials=trials, cfg=cfg)
        with atomic_dir(Path(output)) as tmp:
            table = power.power_curve(design, sizes, sims, cfg.alpha, seed)
            power.write(table, design, target_power, tmp)
    except AnalysisError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(table.to_string(index=False))
    click.echo(f"power curve written to {Path(output) / 'power.png'}")
