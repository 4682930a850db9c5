"""What a command-line flag means: the same in every package's commands (tests/test_cli_flags.py walks them all).

- `-o/--output PATH`: the file or folder a command writes; every command that writes one says it so.
- `--effect-prob DEFENSE=P` (`bots`: a probability) and `--effect-logodds DEFENSE=LOGOR` (`power`: a conditional
  log-odds ratio against the reference defense) are read by one parser, `parse_effects`.
- Older spellings still work, hidden, so existing scripts do not break: `--out` (now `-o/--output`) and `--effect`
  (whose unit was the command's own). Each prints one line saying so, and an effect says which unit it was read in.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import click
from click.core import ParameterSource

OUTPUT_FLAGS = ("-o", "--output")
# unit -> (flag, metavar, what the number is)
EFFECT_UNITS = {
    "prob": ("--effect-prob", "P", "a probability in [0, 1]"),
    "logodds": ("--effect-logodds", "LOGOR", "a log-odds ratio"),
}
DEPRECATED = {"--out": "-o/--output", "--effect": "--effect-prob (bots) or --effect-logodds (power)"}

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def parse_effects(items: Iterable[str], unit: str, flag: str | None = None) -> dict[str, float]:
    """{defense: value} from DEFENSE=X items, X in `unit` ("prob" or "logodds"); a bad item is a usage error."""
    canonical, metavar, meaning = EFFECT_UNITS[unit]
    effects: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        fits = 0.0 <= value <= 1.0 if unit == "prob" else math.isfinite(value)
        if not (sep and name.strip() and fits):
            raise click.BadParameter(f"{item!r}: expected DEFENSE={metavar}, {metavar} {meaning}",
                                     param_hint=flag or canonical)
        effects[name.strip()] = value
    return effects


def output_option(help: str, *, dest: str = "output", file_okay: bool = True, dir_okay: bool = True,
                  path_type: type | None = None, required: bool = False, default: Any = None,
                  show_default: bool = False, old: str | None = None) -> Decorator:
    """`-o/--output PATH`; `old` ("--out") is a command's earlier spelling, kept hidden and deprecated."""
    if required and old:
        raise TypeError("a required -o/--output cannot take an old spelling (click would ask for -o first)")
    kind = click.Path(file_okay=file_okay, dir_okay=dir_okay, writable=True, path_type=path_type)
    return _with_old_spelling(
        click.option(*OUTPUT_FLAGS, dest, type=kind, required=required, default=default, show_default=show_default,
                     help=help, callback=_take_old(dest, "-o/--output", old, lambda v: v)),
        dest, old, kind, "-o/--output", "")


def effect_option(unit: str, help: str, *, dest: str = "effects", old: str | None = None) -> Decorator:
    """`--effect-prob` or `--effect-logodds` (repeatable DEFENSE=X), parsed to {defense: value}; `old` ("--effect")
    is the command's earlier spelling of the same unit, kept hidden and deprecated."""
    flag, metavar, meaning = EFFECT_UNITS[unit]
    return _with_old_spelling(
        click.option(flag, dest, multiple=True, metavar=f"DEFENSE={metavar}", help=help,
                     callback=_take_old(dest, flag, old, lambda items: parse_effects(items, unit, flag))),
        dest, old, None, flag, f" (read as {meaning})", lambda items: parse_effects(items, unit, old), multiple=True)


def _meta_key(dest: str) -> str:
    return f"advlegit.old_spelling.{dest}"


def _take_old(dest: str, new: str, old: str | None, convert: Callable[[Any], Any]):
    """Callback of the current spelling: its own value, or the one the old spelling left (click processes
    options given on the command line before the others, so the old one has run when only it was given)."""
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        key = _meta_key(dest)
        if key in ctx.meta:
            if ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
                raise click.UsageError(f"give {new} only, not {old} as well")
            return ctx.meta[key]
        return convert(value)
    return callback


def _with_old_spelling(current: Decorator, dest: str, old: str | None, kind: Any, new: str, note: str,
                       convert: Callable[[Any], Any] = lambda v: v, multiple: bool = False) -> Decorator:
    if old is None:
        return current

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value == ():
            return
        if ctx.get_parameter_source(dest) is ParameterSource.COMMANDLINE:
            raise click.UsageError(f"give {new} only, not {old} as well")
        click.echo(f"{old} is deprecated: use {new}{note}", err=True)
        ctx.meta[_meta_key(dest)] = convert(value)

    hidden = click.option(old, f"{dest}_{old.strip('-')}_deprecated", type=kind, multiple=multiple, hidden=True,
                          expose_value=False, callback=callback)
    return lambda f: current(hidden(f))
