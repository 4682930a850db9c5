"""`advlegit demo` (click group merged into the top-level CLI by advlegit/cli.py)."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from advlegit.contracts.cli_flags import output_option

cli = click.Group("demo")


@cli.command()
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Generation config (default: examples/mnist-demo.toml, the embedded MNIST demo).")
@click.option("--quick", is_flag=True,
              help="A first look in about 2 minutes: examples/demo-quick.toml (three defenses, tiny models too weak "
                   "for conclusions), written to runs/demo-quick unless -o says otherwise.")
@output_option("Folder for everything the demo writes [default: runs/mnist-demo; with --quick, runs/demo-quick].",
               dest="out", file_okay=False, path_type=Path, old="--out")
@click.option("--bots", default=30, show_default=True, type=click.IntRange(1, 10_000),
              help="Simulated participants per study.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535),
              help="Port to serve on (a free one is chosen if it is taken).")
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Keep serving the studies after the report, until Ctrl-C.")
@click.option("--device", default="cpu", show_default=True, help="torch device for training: cpu, cuda ...")
def demo(config: Path | None, quick: bool, out: Path | None, bots: int, host: str, port: int, serve: bool,
         device: str) -> None:
    """The whole study on the embedded defaults: train the defenses, write the stimuli, create an
    identify, a rate and a compare study, run simulated participants, export, analyse, then serve the
    studies so you can take part and watch your answers arrive."""
    from .run import DEFAULT_CONFIG, QUICK_CONFIG, Demo, DemoError, DemoOptions, default_out

    if quick and config is not None:
        raise click.UsageError("--quick is a config of its own (examples/demo-quick.toml): give --quick or --config")

    # `kill PID` must stop the server too (it runs in its own session, so Ctrl-C reaches only us), and
    # Ctrl-C must work even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config = QUICK_CONFIG if quick else config or DEFAULT_CONFIG
    options = DemoOptions(config=config, out=out or default_out(config), bots=bots, host=host, port=port,
                          device=device)
    runner = Demo(options, echo=click.echo)
    try:
        result = runner.run()
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    if result.server is None:
        return
    if not serve:
        runner.release(result.server)
        return
    click.echo(f"\nServing at {result.url} - press Ctrl-C to stop.")
    try:
        code = result.server.wait()
        click.echo(f"the server stopped (exit {code}); its log: {runner.p.server_log}")
    except KeyboardInterrupt:
        click.echo("stopping the server")
    finally:
        runner.release(result.server)
