"""Command-line group of the generation package (composed into `advlegit` by advlegit/cli.py).

Heavy imports (torch) happen inside the commands, so other packages' commands stay light.
"""
from __future__ import annotations

from pathlib import Path

import click

from advlegit.contracts.cli_flags import output_option

cli = click.Group("generation")


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@output_option("Folder to write the stimulus set into (not needed with --dry-run).", dest="out", file_okay=False,
               path_type=Path, old="--out")
@click.option("--device", default="cpu", show_default=True, help="torch device: cpu, cuda, cuda:1 ...")
@click.option("--force", is_flag=True, help="Replace OUT if it holds another stimulus set.")
@click.option("--dry-run", is_flag=True, help="Validate CONFIG and print the plan; train and write nothing.")
def generate(config: Path, out: Path | None, device: str, force: bool, dry_run: bool) -> None:
    """Train, evaluate and attack every defense in CONFIG; write a stimulus set to OUT."""
    if dry_run:
        _dry_run(config)
        return
    if out is None:
        raise click.UsageError("Missing option '-o' / '--output' (or pass --dry-run).")
    _run_generate(config, out, device, force)


def _dry_run(config: Path) -> None:
    from .config import ConfigError, load_config
    from .plan import make_plan

    try:
        _refuse_study_design(config)
        plan = make_plan(load_config(config))
    except ConfigError as exc:
        raise click.ClickException(f"{config}: {exc}") from None
    click.echo(plan.text())


def _run_generate(config: Path, out: Path, device: str, force: bool) -> None:
    from .config import ConfigError, load_config
    from .data import DataError
    from .pipeline import OutputExistsError
    from .pipeline import generate as run
    from .user_models import ModelFileError

    try:
        cfg = load_config(config)
        _check_device(device)
        path = run(cfg, out, device=device, force=force)
    except (ConfigError, DataError, OutputExistsError, ModelFileError) as exc:
        raise click.ClickException(f"{config}: {exc}" if isinstance(exc, ConfigError) else str(exc)) from None
    click.echo(f"stimulus set: {path}")
    click.echo(f"figures:      {path / 'figures'}")


def _refuse_study_design(config: Path) -> None:
    """A study design (examples/design-*.toml) is for `study create --design`, not for generate."""
    import tomllib

    from .config import ConfigError

    try:
        raw = tomllib.loads(config.read_text()) if config.is_file() else {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return  # load_config reports it
    if "study" in raw:
        raise ConfigError("this is a study design ([study] table), not a generation config: use it with "
                          "`advlegit study create --stimuli DIR --design FILE`")


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise click.ClickException(f"--device {device}: no CUDA device is available here (use --device cpu)")


@cli.command("verify-stimuli")
@click.argument("folder", type=click.Path(path_type=Path))
def verify_stimuli(folder: Path) -> None:
    """Exit 1 on any missing, altered or unlisted file in the stimulus set FOLDER."""
    from .manifest import VerificationError, manifest_sha256, verify

    try:
        manifest = verify(folder)
    except VerificationError as exc:
        for problem in exc.problems:
            click.echo(f"FAIL {problem}", err=True)
        raise SystemExit(1) from None
    click.echo(f"OK {folder}: {len(manifest['files'])} files, {len(manifest['stimuli'])} stimuli, "
               f"manifest sha256 {manifest_sha256(folder)}")
