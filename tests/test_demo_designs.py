"""The demo's design files (demo/designs.py, written with tomli-w) read back as exactly what was written: every
example design, the designs the demo derives from them, and strings TOML must escape; the study app loads them."""
from __future__ import annotations

import tomllib

import pytest

from advlegit.demo.designs import EXAMPLES, TASKS, derive, write_toml
from advlegit.study_app.design import load_design

EXAMPLE_DESIGNS = sorted(EXAMPLES.glob("design-*.toml"))


def test_there_are_example_designs():
    assert len(EXAMPLE_DESIGNS) >= len(TASKS)


@pytest.mark.parametrize("example", EXAMPLE_DESIGNS, ids=lambda p: p.name)
def test_every_example_design_reads_back_unchanged(tmp_path, example):
    data = tomllib.loads(example.read_text(encoding="utf-8"))
    path = write_toml(data, tmp_path / "d.toml", "a header")
    assert tomllib.loads(path.read_text(encoding="utf-8")) == data


@pytest.mark.parametrize("task", TASKS)
def test_a_derived_design_reads_back_unchanged_under_its_header(tmp_path, task):
    data = derive(task, ["normal", "gradreg_y", "distill"], 6)
    path = write_toml(data, tmp_path / "new" / f"{task}.toml", "Written by `advlegit demo`\nfrom the examples.")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Written by `advlegit demo`\n# from the examples.\n\n[")
    assert tomllib.loads(text) == data
    design = load_design(path)
    assert design.defenses == ["normal", "gradreg_y", "distill"] and design.trials == 6


def test_strings_toml_must_escape_survive(tmp_path):
    data = {"consent": {"text": 'a "quoted" \\ back\\slash\nnew line\ttab — Ziffer ä {minutes}'},
            "study": {"defenses": ["a'b", 'c"d'], "flag": True, "rate": 0.25, "n": 3}}
    path = write_toml(data, tmp_path / "d.toml", "")
    assert tomllib.loads(path.read_text(encoding="utf-8")) == data


def test_the_rerun_hint_repeats_the_command_that_was_run():
    """The demo's closing hint must rerun the same demo (same config and folder), or it would train anew."""
    from pathlib import Path

    from advlegit.demo.run import DEFAULT_CONFIG, QUICK_CONFIG, DemoOptions, default_out, rerun_command

    assert rerun_command(DemoOptions()) == "advlegit demo"
    assert rerun_command(DemoOptions(config=QUICK_CONFIG, out=default_out(QUICK_CONFIG))) == "advlegit demo --quick"
    assert rerun_command(DemoOptions(config=QUICK_CONFIG, out=Path("my run"))) == "advlegit demo --quick -o 'my run'"
    assert rerun_command(DemoOptions(config=Path("study.toml"), out=Path("runs/mnist-demo"))) == \
        "advlegit demo --config study.toml"
    assert default_out(DEFAULT_CONFIG) == Path("runs/mnist-demo")


def test_quick_and_config_together_are_a_usage_error():
    from click.testing import CliRunner

    from advlegit.cli import main

    result = CliRunner().invoke(main, ["demo", "--quick", "--config", str(EXAMPLES / "mnist-demo.toml")])
    assert result.exit_code == 2 and "give --quick or --config" in result.output
