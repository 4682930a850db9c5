"""docs/config-reference.md is generated from the configuration dataclasses; it must match the code."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_page_matches_the_dataclasses():
    ref = _script()
    assert ref.PAGE.read_text() == ref.render(), "run: python scripts/config_reference.py"


def test_every_documented_key_says_what_it_means():
    undocumented = [line.split("|")[1].strip() for line in _script().render().splitlines()
                    if line.startswith("| `") and line.rstrip().endswith("|  |")]
    assert undocumented == [], f"add a trailing # comment to these fields: {undocumented}"


def test_every_design_key_is_on_the_page():
    """Every key a design file may set (study_app/design._ALLOWED) has a row, [stimuli] and [analysis] too."""
    from advlegit.study_app.design import _ALLOWED

    text = _script().render()
    design = text[text.index("## Study design"):text.index("## Analysis options")]
    for section, keys in _ALLOWED.items():
        assert f"### `[{section}]`" in design, section
        part = design[design.index(f"### `[{section}]`"):]
        part = part[:part.find("\n### ", 1)] if "\n### " in part[1:] else part
        if section == "analysis":  # its table is the shared options type, older spellings aside
            continue
        for key in keys:
            assert f"| `{key}` |" in part, f"[{section}] {key} is not in docs/config-reference.md"


def test_comments_are_read_from_the_field_lines():
    from dataclasses import dataclass

    @dataclass
    class Example:
        # explained above
        a: int = 1
        b: str = "x|y"  # explained beside, with a | bar
        c: float = 0.5

    comments = _script().field_comments(Example)
    assert comments == {"a": "explained above", "b": "explained beside, with a | bar", "c": ""}


def test_older_spellings_read_old_to_new():
    """ALIASES maps an older spelling to the current name; the page must say so that way round."""
    from advlegit.contracts.analysis_options import ALIASES, OPTION_NAMES
    text = _script().render()
    for old, new in ALIASES.items():
        assert new in OPTION_NAMES and old not in OPTION_NAMES
        assert f"`{old}` (now `{new}`)" in text
        assert f"| `{new}` |" in text and f"| `{old}` |" not in text  # the tables list the current names


def test_every_exclusion_rule_and_parameter_is_documented():
    """The generated page lists every rule of contracts/exclusion_rules.py with its parameters, and
    docs/analysis.md explains each one."""
    from advlegit.contracts.exclusion_rules import RULES
    page = _script().render()
    guide = (ROOT / "docs" / "analysis.md").read_text()
    for rule in RULES.values():
        row = next((line for line in page.splitlines()
                    if line.startswith(f"| `{rule.name}` |") and f"({rule.level} level)" in line), "")
        assert row, rule.name
        assert f"`{rule.name}`" in guide, rule.name
        for p in rule.params:
            assert f"`{p.name}` ({p.default:g})" in row and f"`{p.name}`" in guide, (rule.name, p.name)
        for c in rule.columns:
            assert f"`{c}`" in row, (rule.name, c)


def test_every_design_presentation_key_is_documented():
    """[presentation] is a design section: each key the parser accepts has a row in the page."""
    from advlegit.study_app.design import _ALLOWED

    text = _script().render()
    assert "### `[presentation]`" in text
    for key in sorted(_ALLOWED["presentation"]):
        assert f"| `{key}` |" in text.split("### `[presentation]`")[1].split("### ")[0], key
