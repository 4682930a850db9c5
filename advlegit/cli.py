"""The `advlegit` console script: composes each package's own click group, nothing else.

Each package keeps its commands in its own `cli.py` (a click group) and must not import heavy
dependencies (torch) at module import time, so `advlegit serve` never loads torch.
"""
from __future__ import annotations

import importlib
import logging

import click

# (package module, attribute) of every click group merged into the top level.
_GROUPS = ("advlegit.generation.cli", "advlegit.study_app.cli", "advlegit.analysis.cli", "advlegit.demo.cli")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages (ours and the libraries').")
def main(verbose: bool) -> None:
    """advlegit: human-subject studies of adversarial examples against defended classifiers."""
    # Libraries (Alembic's "setup plugin" lines, ...) log only warnings unless -v: a command prints
    # what was asked for. Our own packages keep their progress messages at INFO, on stderr.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("advlegit").setLevel(logging.INFO)


def _compose() -> None:
    for module_name in _GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name or module_name.startswith(str(exc.name) + "."):
                continue  # package not built yet
            raise
        for name, command in module.cli.commands.items():
            main.add_command(command, name)


_compose()

if __name__ == "__main__":
    main()
