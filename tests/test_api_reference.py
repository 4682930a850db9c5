"""docs/api.md is generated from the analysis API's docstrings; it must match the code."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("api_reference", ROOT / "scripts" / "api_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_page_matches_the_docstrings():
    ref = _script()
    assert ref.PAGE.read_text(encoding="utf-8") == ref.render(), "run: python scripts/api_reference.py"


@pytest.mark.parametrize("package, skip", [("analysis", ("AnalysisError", "TIDY_COLUMNS")),
                                           ("generation", ("GenerationError",))])
def test_every_public_name_has_a_section_with_parameters_or_attributes_and_examples(package, skip):
    module = importlib.import_module(package)
    text = _script().render()
    assert module.__all__
    for name in module.__all__:
        if name in skip:
            continue
        head = f"## class `{name}`" if isinstance(getattr(module, name), type) else f"## `{name}("
        part = text[text.index(head):]
        part = part[:part.find("\n## ", 1)]
        assert "**Examples**" in part, name
        assert "**Parameters**" in part or "**Attributes**" in part, name
