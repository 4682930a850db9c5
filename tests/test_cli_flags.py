"""One meaning per flag across every command (contracts/cli_flags.py): every command that writes a file or folder
takes it as -o/--output, no short flag means two things, and the two effect units have two names. The older
spellings still parse, each with one line saying it is deprecated (and in which unit an effect was read)."""
from __future__ import annotations

import re
from collections import defaultdict

import click
import pytest

import advlegit
from advlegit.contracts.cli_flags import DEPRECATED, EFFECT_UNITS, OUTPUT_FLAGS, parse_effects

# A visible option spelled like one of these writes something, so it must be -o/--output.
WRITES = re.compile(r"^--(out|output|.*-out|.*-output|dest|save|write|report|target-dir)($|-)")
WRITERS = {"generate", "demo", "analyze", "prereg", "power", "export"}  # commands that write a file or folder


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, path)
        else:
            yield " ".join(path), command


COMMANDS = dict(_commands(advlegit.main))


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option)]


def _writes(option: click.Option) -> bool:
    path_type = option.type if isinstance(option.type, click.Path) else None
    return bool(path_type and path_type.writable) or any(WRITES.match(o) for o in option.opts if not option.hidden)


def test_the_walk_sees_every_package():
    assert {"generate", "verify-stimuli", "db upgrade", "study create", "bots", "export", "analyze", "power",
            "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_option_that_writes_is_o_output(name):
    command = COMMANDS[name]
    writers = [o for o in _options(command) if not o.hidden and _writes(o)]
    for option in writers:
        assert tuple(option.opts) == OUTPUT_FLAGS and not option.secondary_opts, (name, option.opts)
        assert isinstance(option.type, click.Path) and option.type.writable, (name, option.opts)
    assert bool(writers) == (name in WRITERS), f"{name}: writes a file but takes no -o/--output, or the reverse"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_hidden_options_are_only_the_deprecated_spellings(name):
    for option in _options(COMMANDS[name]):
        if option.hidden:
            assert len(option.opts) == 1 and option.opts[0] in DEPRECATED, (name, option.opts)
            assert not option.expose_value, "the current spelling's parameter carries the value"


def test_no_short_flag_means_two_things():
    meanings: dict[str, set[str]] = defaultdict(set)
    commands = [("", advlegit.main), *COMMANDS.items()]
    for name, command in commands:
        for option in _options(command):
            shorts = [o for o in option.opts if re.fullmatch(r"-[A-Za-z0-9]", o)]
            longs = [o for o in option.opts + option.secondary_opts if o.startswith("--")]
            for short in shorts:
                assert longs, f"{name}: {short} has no long name to say what it means"
                meanings[short].add(longs[0])
    assert meanings["-o"] == {"--output"}
    clashes = {short: longs for short, longs in meanings.items() if len(longs) > 1}
    assert clashes == {}, clashes


def test_the_effect_units_have_distinct_names():
    def effect_flags(name):
        return {o for option in _options(COMMANDS[name]) if not option.hidden for o in option.opts
                if o.startswith("--effect")}

    assert effect_flags("bots") == {EFFECT_UNITS["prob"][0]} == {"--effect-prob"}
    assert effect_flags("power") == {EFFECT_UNITS["logodds"][0]} == {"--effect-logodds"}


def _params(name: str, args: list[str]) -> dict:
    return COMMANDS[name].make_context(name, list(args)).params  # click consumes the list it parses


BOTS = ["--url", "http://127.0.0.1:1", "--study", "s"]


@pytest.mark.parametrize("name, args, unit", [
    ("bots", [*BOTS, "--effect-prob", "gradreg=0.4", "--effect-prob", "normal=1"], None),
    ("bots", [*BOTS, "--effect", "gradreg=0.4", "--effect", "normal=1"], "read as a probability"),
])
def test_bots_reads_effects_as_probabilities(capsys, name, args, unit):
    assert _params(name, args)["effects"] == {"gradreg": 0.4, "normal": 1.0}
    err = capsys.readouterr().err
    assert (f"--effect is deprecated: use --effect-prob ({unit}" in err) if unit else err == ""


@pytest.mark.parametrize("args, unit", [
    (["-o", "p", "--effect-logodds", "gradreg_y=1.5"], None),
    (["-o", "p", "--effect", "gradreg_y=1.5"], "read as a log-odds ratio"),
])
def test_power_reads_effects_as_log_odds_ratios(capsys, args, unit):
    assert _params("power", args)["effects"] == {"gradreg_y": 1.5}
    err = capsys.readouterr().err
    assert (f"--effect is deprecated: use --effect-logodds ({unit})" in err) if unit else err == ""


@pytest.mark.parametrize("name, args, dest", [
    ("generate", ["c.toml", "--out", "set"], "out"),
    ("demo", ["--out", "set"], "out"),
])
def test_out_still_works_and_says_it_is_deprecated(capsys, name, args, dest):
    assert str(_params(name, args)[dest]) == "set"
    assert capsys.readouterr().err.count("--out is deprecated: use -o/--output") == 1
    assert str(_params(name, [a if a != "--out" else "-o" for a in args])[dest]) == "set"
    assert capsys.readouterr().err == ""


def test_demo_keeps_its_default_folder():
    """-o unset is resolved by the command: runs/mnist-demo, or runs/demo-quick with --quick."""
    from advlegit.demo.run import DEFAULT_CONFIG, QUICK_CONFIG, default_out

    assert _params("demo", [])["out"] is None
    assert str(default_out(DEFAULT_CONFIG)) == "runs/mnist-demo"
    assert str(default_out(QUICK_CONFIG)) == "runs/demo-quick"


@pytest.mark.parametrize("name, args, both", [
    ("generate", ["c.toml", "-o", "a", "--out", "b"], "give -o/--output only, not --out as well"),
    ("generate", ["c.toml", "--out", "b", "-o", "a"], "give -o/--output only, not --out as well"),
    ("bots", [*BOTS, "--effect", "a=0.1", "--effect-prob", "b=0.2"], "give --effect-prob only, not --effect"),
    ("power", ["-o", "p", "--effect-logodds", "a=1", "--effect", "b=2"], "give --effect-logodds only"),
])
def test_old_and_new_spelling_together_is_a_usage_error(name, args, both):
    with pytest.raises(click.UsageError, match=re.escape(both)):
        _params(name, args)


@pytest.mark.parametrize("item, unit, message", [
    ("gradreg", "prob", "expected DEFENSE=P"),
    ("=0.5", "prob", "expected DEFENSE=P"),
    ("gradreg=1.2", "prob", "P a probability in [0, 1]"),
    ("gradreg=-0.1", "prob", "P a probability in [0, 1]"),
    ("gradreg=x", "logodds", "expected DEFENSE=LOGOR"),
    ("gradreg=nan", "logodds", "expected DEFENSE=LOGOR"),
    ("gradreg=inf", "logodds", "expected DEFENSE=LOGOR"),
])
def test_one_parser_refuses_what_its_unit_cannot_be(item, unit, message):
    with pytest.raises(click.BadParameter, match=re.escape(message)):
        parse_effects([item], unit)


def test_one_parser_reads_both_units():
    assert parse_effects([" gradreg =0.25", "normal=0"], "prob") == {"gradreg": 0.25, "normal": 0.0}
    assert parse_effects(["gradreg=-2.5", "normal=3"], "logodds") == {"gradreg": -2.5, "normal": 3.0}


def test_a_bad_old_spelling_is_named_in_the_error(capsys):
    with pytest.raises(click.BadParameter) as err:
        _params("bots", [*BOTS, "--effect", "gradreg=2"])
    assert "--effect" in err.value.format_message() and "--effect-prob" not in err.value.format_message()
    with pytest.raises(click.BadParameter) as err:
        _params("bots", [*BOTS, "--effect-prob", "gradreg=2"])
    assert "--effect-prob" in err.value.format_message()
