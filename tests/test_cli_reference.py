"""docs/cli.md is generated from the click commands; it must match them."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_page_matches_the_commands():
    ref = _script()
    assert ref.PAGE.read_text(encoding="utf-8") == ref.render(), "run: python scripts/cli_reference.py"


def test_every_command_has_a_section_and_no_old_spelling_shows():
    ref = _script()
    import advlegit

    text = ref.render()
    for name, _ in ref._commands(advlegit.main):
        assert f"\n## advlegit {name}\n" in text, name
    body = text[text.index("\n## advlegit\n"):]
    assert "--out " not in body and "--effect " not in body


def test_the_page_does_not_depend_on_what_parsed_before():
    """click caches a command's help option from the first context that asks; a package's own group (as the
    study app's tests use) has plain --help, advlegit has -h/--help. The page always shows advlegit's."""
    import advlegit

    export = advlegit.main.commands["export"]
    export.get_help(click.Context(export, info_name="export"))  # caches a plain --help
    assert _script().render() == _script().render()
    assert "  -h, --help" in _script().render().split("## advlegit export")[1].split("## advlegit")[0]
