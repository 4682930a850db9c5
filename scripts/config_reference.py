"""Write docs/config-reference.md from the configuration dataclasses themselves (and the study app's
environment variables from study_app/settings.py), so it cannot drift.

    python scripts/config_reference.py          # rewrite the page
    python scripts/config_reference.py --check  # exit 1 if the page is out of date (the test suite does this)

Descriptions are the trailing `# comments` on each field's line in the source; defaults and types come
from the dataclass fields; defense parameters from each defense's `Params`; attack parameters from the
attack functions' keyword-only arguments.
"""
from __future__ import annotations

import dataclasses
import inspect
import io
import json
import sys
import textwrap
import tokenize
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "config-reference.md"


def field_comments(cls: type) -> dict[str, str]:
    """{field name: trailing comment} from the source of the class and its dataclass bases (comment
    lines just above a field count too)."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            comments.update({k: v for k, v in _own_field_comments(klass).items() if v or k not in comments})
    return comments


def _own_field_comments(cls: type) -> dict[str, str]:
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[str, str] = {}
    pending: list[str] = []
    line_tokens: list[tokenize.TokenInfo] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NEWLINE, tokenize.NL):
            names = [t for t in line_tokens if t.type == tokenize.NAME]
            ops = [t for t in line_tokens if t.type == tokenize.OP]
            text = " ".join(t.string.lstrip("#").strip() for t in line_tokens if t.type == tokenize.COMMENT)
            if names and ops and ops[0].string == ":" and ops[0].start > names[0].start and names[0].start[1] == 4:
                comments[names[0].string] = " ".join(pending + ([text] if text else []))
                pending = []
            elif text and not names:
                pending.append(text)
            else:
                pending = []
            line_tokens = []
        elif tok.type not in (tokenize.INDENT, tokenize.DEDENT):
            line_tokens.append(tok)
    return comments


def cell(text: str) -> str:
    """Table cells: a literal | would end the cell."""
    return text.replace("|", "\\|")


def toml_value(v: Any) -> str:
    if v is None:
        return "*(unset)*"
    if isinstance(v, bool):
        return "`true`" if v else "`false`"
    if isinstance(v, (list, tuple, dict, str, int, float)):
        text = json.dumps(list(v) if isinstance(v, tuple) else v)
        return f"`{text}`"
    return f"`{v!r}`"


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return "required"


def field_table(cls: type, skip: tuple[str, ...] = (), rename: dict[str, str] | None = None) -> str:
    rename = rename or {}
    comments = field_comments(cls)
    nested = dict(nested_sections(cls))  # tables of their own, documented separately
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name in nested:
            continue
        default = default_of(f)
        shown = "**required**" if default == "required" else toml_value(default)
        key = rename.get(f.name, f.name)
        rows.append(f"| `{key}` | `{cell(str(f.type))}` | {cell(shown)} | {cell(meaning(comments, f))} |")
    return "\n".join(rows)


def meaning(comments: dict[str, str], f: dataclasses.Field, rules: dataclasses.Field | None = None) -> str:
    """The field's comment, then its range or choices (contracts/validation.py rules), the ones enforced."""
    from advlegit.contracts.validation import rule_text

    rule = rule_text((rules or f).metadata)
    return comments.get(f.name, "") + (f" ({rule})" if rule else "")


def nested_sections(cls: type) -> list[tuple[str, type]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])]


def first_paragraph(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def generation_part() -> list[str]:
    from advlegit.generation import config as gc
    from advlegit.generation.attacks import ATTACKS, attack_defaults
    from advlegit.generation.defenses import DEFENSES

    out = ["## Generation: `advlegit generate CONFIG.toml -o DIR`", "",
           "A TOML file; every table and key is optional except at least one `[[defenses]]`. Unknown keys "
           "are refused with their name. Ready examples: `examples/quick.toml`, `examples/mnist-demo.toml`.", "",
           "### top level", "", field_table(gc.GenerationConfig, skip=("defenses",)), ""]
    for name, cls in nested_sections(gc.GenerationConfig):
        out += [f"### `[{name}]`", "", field_table(cls), ""]
    out += ["### `[[defenses]]` (one table per defended model)", "",
            "Keys besides these are the parameters of the defense `kind` (tables below), written flat in the "
            "same table (`lambda` may be spelled as in the papers).", "",
            field_table(gc.DefenseConfig, skip=("params",)), ""]
    for kind, cls in sorted(DEFENSES.items()):
        module = sys.modules[cls.__module__]
        out += [f"#### defense `{kind}`", "", first_paragraph(module), ""]
        params = cls.Params
        if dataclasses.fields(params):
            out += [field_table(params, rename={"lambda_": "lambda"}), ""]
        else:
            out += ["No parameters.", ""]
    out += ["### attacks (`[stimuli] attack`, `attack_params`; `[evaluation] attacks`)", "",
            "| attack | parameters and defaults | what it is |", "|---|---|---|"]
    for name in sorted(ATTACKS):
        params = ", ".join(f"`{k}` = {toml_value(v)}" for k, v in attack_defaults(name).items()) or "none"
        out.append(f"| `{name}` | {cell(params)} | {cell(first_paragraph(ATTACKS[name]))} |")
    return out + [""]


def design_part() -> list[str]:
    from advlegit.study_app import design as sd

    sections = sd._ALLOWED
    names = {("consent", "text"): "consent_md", ("instructions", "text"): "instructions_md",
             ("completion", "code"): "completion_code", ("debrief", "questions"): "debrief_questions",
             ("debrief", "explanation_md"): "debrief_explanation_md"}
    comments = field_comments(sd.Design)
    fields = {f.name: f for f in dataclasses.fields(sd.Design)}
    out = ["## Study design: `advlegit study create --stimuli DIR --design DESIGN.toml`", "",
           first_paragraph(sd) + " Ready examples: `examples/design-identify.toml`, `design-rate.toml`, "
           "`design-compare.toml`, `design-explain.toml`.", ""]
    for section in ("study", "consent", "instructions", "completion", "debrief"):
        out += [f"### `[{section}]`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for key in sorted(sections[section], key=lambda k: list(fields).index(names.get((section, k), k))):
            f = fields[names.get((section, key), key)]
            rules = next(r for r in dataclasses.fields(sd._TABLES[section]) if r.name == key)
            default = default_of(rules)  # the file's default (debrief questions: the study's, in its language)
            default = default_of(f) if default is None and default_of(f) != "required" else default
            shown = "**required**" if default == "required" else toml_value(default)
            out.append(f"| `{key}` | `{cell(str(f.type))}` | {cell(shown)} | {cell(meaning(comments, f, rules))} |")
        out.append("")
    out += ["### `[stimuli]`", "", first_paragraph(sd.StimulusChoice), "", field_table(sd.StimulusChoice), ""]
    from advlegit.study_app import presentation as sp

    out += ["### `[presentation]` (how every trial is shown, whatever the task)", "",
            first_paragraph(sp) + " Timing, the mask and the measured columns: [study-app.md](study-app.md) "
            "(presentation protocol) and [export.md](export.md).", "",
            field_table(sp.Presentation), ""]
    out += ["### `[analysis]` (pre-registered; carried into the export's companion `.study.json`)", "",
            "One type shared with the analysis (`contracts/analysis_options.py`): the same names, defaults and "
            "checks as the analysis options below.", "",
            field_table(sd.Analysis, skip=("set_in_design",)), ""]
    return out + exclusion_rules_part()


def exclusion_rules_part() -> list[str]:
    """`[[analysis.exclusions]]`: every rule with its parameters, from contracts/exclusion_rules.py."""
    from advlegit.contracts import exclusion_rules as er

    out = ["### `[[analysis.exclusions]]` (one table per rule, applied in the order written)", "",
           "Pre-registrable exclusion rules (`contracts/exclusion_rules.py`), applied after the app's own two "
           "(participants marked excluded, participants who did not finish). Each rule may appear once; "
           "a parameter left out takes its default (`attention_checks.min_pass_rate` and `rt_floor.ms` default to the "
           "`attention_threshold` and `rt_floor_ms` options). Unset, the list is `attention_checks`, then "
           "`rt_floor`.", "",
           "| `rule` | removes | parameters (default) | reads export columns |", "|---|---|---|---|"]
    for r in er.RULES.values():
        params = "; ".join(f"`{p.name}` ({p.default:g}): {p.meaning}" for p in r.params) or "none"
        cols = ", ".join(f"`{c}`" for c in r.columns) or "(always present)"
        out.append(f"| `{r.name}` | {cell(r.meaning)} ({r.level} level) | {cell(params)} | {cols} |")
    return out + [""]


def analysis_part() -> list[str]:
    from advlegit.analysis import config as ac

    # ALIASES maps an older spelling to the current name: both are accepted, the current one is written
    older = ", ".join(f"`{old}` (now `{new}`)" for old, new in ac.ALIASES.items())
    return ["## Analysis options: `advlegit analyze FILE --config FILE.toml` (an `[analysis]` table)", "",
            "The study's own `[analysis]` section reaches the analysis through the export's companion file; "
            "a `--config` file or command-line options override it, and the report lists every value and "
            "where it came from. The design file and the analysis spell every option the same way; older "
            f"spellings still accepted in either: {older}.", "",
            field_table(ac.AnalysisConfig, skip=("explicit",)), ""]


def environment_part() -> list[str]:
    """The study app's environment variables, from study_app/settings.py (AppSettings)."""
    from advlegit.study_app.settings import AppSettings

    comments = field_comments(AppSettings)
    out = ["## Study app environment (`study_app/settings.py`)", "",
           "Every variable the study app, `advlegit serve` and the study commands read; nothing else reads the "
           "environment. Unset or empty means the default; a value outside what is allowed stops startup with "
           "an error naming the variable. Secrets (marked) are never shown in those errors or in the settings' repr. "
           "Other variables belong to other parts: `ADVLEGIT_CACHE_DIR` (generation, [generation.md](generation.md)); "
           "`ADVLEGIT_DOMAIN`, `POSTGRES_PASSWORD`, `PORT` (the container files in `deploy/`); "
           "`ADVLEGIT_TEST_DATABASE_URL`, `ADVLEGIT_HOSTILE_EXAMPLES` (the tests); `ADVLEGIT_SKIP_R` "
           "(`scripts/system-deps.sh`).", "",
           "| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for name, f in AppSettings.variables().items():
        meta = f.metadata
        if meta["default_text"]:
            shown = meta["default_text"]
        elif isinstance(f.default, bool):
            shown = f"`{int(f.default)}`"
        else:
            shown = "*(unset)*" if f.default is None else f"`{f.default}`"
        meaning = comments.get(f.name, "") + (" *Secret.*" if meta["secret"] else "")
        out.append(f"| `{name}` | {cell(shown)} | {cell(meta['allowed'])} | {cell(meaning)} |")
    return out + [""]


def render() -> str:
    lines = ["# Configuration reference", "",
             "Generated from the configuration dataclasses by `python scripts/config_reference.py`; the test "
             "suite fails when this page and the code disagree. The study app's environment variables are "
             "the last section; [deployment.md](deployment.md) shows them in use.", "",
             "Every file on this page is read by one validator (`contracts/validation.py`): a value of the wrong "
             "type, outside the range in brackets, or a key the table does not have is refused before anything "
             "runs, and the message names the value's full path and what was wrong, e.g. "
             "`presentation.exposure_ms: must lie in [0, 60000], got -5` or "
             "`training.stepz: unknown field (did you mean 'steps'? allowed: ...)`.", ""]
    lines += generation_part() + design_part() + analysis_part() + environment_part()
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))
