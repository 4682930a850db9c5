"""Contract 3, the pre-registered analysis options: the `[analysis]` section of a study design file,
which the study app parses (study_app/design.py), stores with the study and writes into the export's
companion `.study.json`, and which the analysis reads (analysis/config.py). Imports nothing of the
project, no Flask, no torch.

One name, one default and one rule per option, here only. `set_in_design` records which options the
design file actually set, so a report can say `study` for those and `default` for the rest.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from . import exclusion_rules as rules

# The task's own pre-registered outcome (primary_outcome = "" means this one).
TASK_OUTCOMES = {"identify": "target_hit", "rate": "rating", "compare": "chosen_defense", "explain": "rating",
                 "explain_pair": "chosen_defense"}
OUTCOMES = ("", "target_hit", "original_hit", "rating", "chosen_defense")
CONTRASTS = ("each_vs_reference", "all_pairs")
# Older spellings still accepted in design files, --config files and on the command line.
ALIASES = {"attention_min_pass_rate": "attention_threshold"}
DEFAULT_REFERENCE = "normal"  # reference_defense = "": this defense if present, else the first in sorted order


class OptionError(ValueError):
    """A bad analysis option; the message starts with the option's name."""


@dataclass
class AnalysisOptions:
    """The design file's `[analysis]` section (every field but set_in_design is an option)."""
    attention_threshold: float = 1.0  # participant kept if >= this share of attention checks passed
    rt_floor_ms: float = 200.0  # responses faster than this are removed (response-level rule)
    primary_outcome: str = ""  # "" = the task's own: target_hit (identify), rating (rate), chosen_defense (compare)
    primary_contrast: str | tuple[str, str] = "each_vs_reference"  # each_vs_reference | all_pairs (Holm within it), or [TREATMENT, CONTROL]
    reference_defense: str = ""  # "" = normal if present, else the first defense in sorted order
    # ordered exclusion rules, applied as written ([[analysis.exclusions]] tables, docs/analysis.md);
    # unset = attention_checks (attention_threshold), then rt_floor (rt_floor_ms)
    exclusions: tuple[dict[str, Any], ...] | None = None
    set_in_design: tuple[str, ...] | None = None  # not an option: the options the design file set (None: not recorded)

    def __post_init__(self) -> None:
        for name in OPTION_NAMES:
            setattr(self, name, check(name, getattr(self, name)))
        settle_exclusions(self)
        if self.set_in_design is not None:
            self.set_in_design = tuple(ALIASES.get(n, n) for n in self.set_in_design if ALIASES.get(n, n) in OPTION_NAMES)

    def values(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in OPTION_NAMES}

    def exclusion_rules(self) -> tuple[dict[str, Any], ...]:
        return effective_exclusions(self)


OPTION_NAMES = tuple(f.name for f in fields(AnalysisOptions) if f.name != "set_in_design")
DEFAULTS = {f.name: f.default for f in fields(AnalysisOptions) if f.name in OPTION_NAMES}


def _number(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise OptionError(f"{name}: expected a number, got {v!r}")
    return float(v)


def check(name: str, value: Any) -> Any:
    """The option's value in its one representation, or OptionError naming the option."""
    if name == "attention_threshold":
        v = _number(name, value)
        if not 0.0 <= v <= 1.0:
            raise OptionError(f"{name}: must be a fraction between 0 and 1, got {value!r}")
        return v
    if name == "rt_floor_ms":
        v = _number(name, value)
        if v < 0:
            raise OptionError(f"{name}: must be >= 0, got {value!r}")
        return v
    if name in ("primary_outcome", "reference_defense"):
        value = "" if value is None else value
        if not isinstance(value, str):
            raise OptionError(f"{name}: expected a string, got {value!r}")
        if name == "primary_outcome" and value not in OUTCOMES:
            raise OptionError(f"{name}: must be one of {', '.join(o for o in OUTCOMES if o)} (or \"\" for the "
                              f"task's own), got {value!r}")
        return value
    if name == "primary_contrast":
        if value is None:
            return DEFAULTS[name]
        if isinstance(value, str):
            if value not in CONTRASTS:
                raise OptionError(f"{name}: must be {' or '.join(CONTRASTS)}, or two defense names, got {value!r}")
            return value
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(x, str) and x for x in value) \
                and value[0] != value[1]:
            return (value[0], value[1])
        raise OptionError(f"{name}: two different defense names [TREATMENT, CONTROL] expected, got {value!r}")
    if name == "exclusions":
        if value is None:
            return None
        try:
            # checked here, completed by settle_exclusions (a left-out ms takes rt_floor_ms, not 200)
            return rules.check_list(value, "exclusions", strict=False, fill=False)
        except rules.RuleError as exc:
            raise OptionError(str(exc)) from None
    raise OptionError(f"{name}: unknown analysis option")


def settle_exclusions(opts: Any) -> None:
    """After each option is checked (AnalysisOptions and the analysis's AnalysisConfig): a rule that left
    out a parameter with a shorthand option takes the shorthand's value, and the shorthand then shows the
    value the rule applies (rt_floor_ms is the rt_floor rule's ms)."""
    if opts.exclusions is None:
        return
    current = {short: getattr(opts, short) for short in rules.SHORTHANDS}
    opts.exclusions = rules.check_list(list(opts.exclusions), "exclusions", current, strict=False)
    for short, (rname, pname) in rules.SHORTHANDS.items():
        for rule in opts.exclusions:
            if rule["rule"] == rname:
                setattr(opts, short, rule[pname])


def effective_exclusions(opts: Any) -> tuple[dict[str, Any], ...]:
    """The rules the analysis applies, in order: the design's list, or the default one."""
    if opts.exclusions is not None:
        return tuple(dict(r) for r in opts.exclusions)
    return rules.default_list(opts.attention_threshold, opts.rt_floor_ms)


def resolve_table(values: dict[str, Any], where: str = "analysis") -> dict[str, Any]:
    """One [analysis] table (its own keys only): its `exclusions` checked strictly against the shorthand
    options the same table sets (rt_floor_ms = 300 beside a rt_floor rule with ms = 250 is an error), the
    rules completed from them."""
    if "exclusions" not in values or values["exclusions"] is None:
        return values
    short = {k: values[k] for k in rules.SHORTHANDS if k in values}
    try:
        for k, v in short.items():
            short[k] = check(k, v)  # a bad shorthand is named as itself first
    except OptionError as exc:
        raise OptionError(f"{where}.{exc}") from None
    try:
        out = dict(values, exclusions=rules.check_list(values["exclusions"], f"{where}.exclusions", short))
    except rules.RuleError as exc:
        msg = str(exc)
        raise OptionError(msg if msg.startswith(f"{where}.") else f"{where}.{msg}") from None
    return out


def canonical(table: dict[str, Any], where: str = "analysis") -> dict[str, Any]:
    """Keys spelled the current way; an option given twice (old and new spelling) is an error."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        name = ALIASES.get(k, k)
        if name in out:
            raise OptionError(f"{where}.{name}: given twice (as {name!r} and an older spelling)")
        out[name] = v
    return out


def parse_section(table: dict[str, Any], task: str | None = None, where: str = "analysis") -> AnalysisOptions:
    """The design file's `[analysis]` table: known options only, each checked; `task` (when given)
    must agree with primary_outcome."""
    if not isinstance(table, dict):
        raise OptionError(f"{where}: must be a table")
    values = canonical(table, where)
    unknown = sorted(set(values) - set(OPTION_NAMES))
    if unknown:
        raise OptionError(f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(OPTION_NAMES)})")
    values = resolve_table(values, where)
    try:
        opts = AnalysisOptions(**values, set_in_design=tuple(values))
    except OptionError as exc:
        raise OptionError(f"{where}.{exc}") from None
    own = TASK_OUTCOMES.get(task or "")
    if own and opts.primary_outcome not in ("", own) and not (task == "identify" and opts.primary_outcome == "original_hit"):
        raise OptionError(f"{where}.primary_outcome: the {task} task's outcome is {own}, got {opts.primary_outcome!r}")
    return opts


def check_defenses(opts: AnalysisOptions, defenses: list[str], where: str = "analysis") -> None:
    """The reference and a pre-registered pair must be defenses the study serves."""
    if opts.reference_defense and opts.reference_defense not in defenses:
        raise OptionError(f"{where}.reference_defense: {opts.reference_defense!r} is not one of the study's "
                          f"defenses {list(defenses)}")
    if isinstance(opts.primary_contrast, tuple):
        bad = [x for x in opts.primary_contrast if x not in defenses]
        if bad:
            raise OptionError(f"{where}.primary_contrast: {bad[0]!r} is not one of the study's defenses {list(defenses)}")


def reference_for(defenses: list[str], chosen: str = "") -> str:
    """The reference defense: the chosen one, else normal if present, else the first in sorted order."""
    if chosen:
        return chosen
    return DEFAULT_REFERENCE if DEFAULT_REFERENCE in defenses else sorted(defenses)[0]
