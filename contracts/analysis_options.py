"""Contract 3, the pre-registered analysis options: the `[analysis]` section of a study design file,
which the study app parses (study_app/design.py), stores with the study and writes into the export's
companion `.study.json`, and which the analysis reads (analysis/config.py). Imports nothing of the
project, no Flask, no torch.

One name, one default and one rule per option, here only. `set_in_design` records which options the
design file actually set, so a report can say `study` for those and `default` for the rest.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from . import exclusion_rules as rules
from .validation import ValidationError, build, canonical, check_field, check_instance, join, spec

# The task's own pre-registered outcome (primary_outcome = "" means this one).
TASK_OUTCOMES = {"identify": "target_hit", "rate": "rating", "compare": "chosen_defense", "explain": "rating",
                 "explain_pair": "chosen_defense"}
OUTCOMES = ("", "target_hit", "original_hit", "rating", "chosen_defense")
CONTRASTS = ("each_vs_reference", "all_pairs")
# Older spellings still accepted in design files, --config files and on the command line.
ALIASES = {"attention_min_pass_rate": "attention_threshold"}
DEFAULT_REFERENCE = "normal"  # reference_defense = "": this defense if present, else the first in sorted order


class OptionError(ValidationError):
    """A bad analysis option; the message starts with the option's name (its path in the table)."""


def _contrast(value: str | tuple[str, str]) -> str | tuple[str, str]:
    if isinstance(value, str):
        if value not in CONTRASTS:
            raise ValueError(f"must be {' or '.join(CONTRASTS)}, or two defense names, got {value!r}")
        return value
    if not all(value) or value[0] == value[1]:
        raise ValueError(f"two different defense names [TREATMENT, CONTROL] expected, got {list(value)!r}")
    return value


def _exclusions(value: Any) -> tuple[dict[str, Any], ...]:
    # checked here, completed by settle_exclusions (a left-out ms takes rt_floor_ms, not 200)
    try:
        return rules.check_list(value, "", strict=False, fill=False)
    except rules.RuleError as exc:
        raise ValidationError.from_message(str(exc)) from None


_FRACTION = "must be a fraction between 0 and 1"
_OUTCOME = f"must be one of {', '.join(o for o in OUTCOMES if o)} (or \"\" for the task's own)"
_CONTRAST = "each_vs_reference or all_pairs, or two different defense names [TREATMENT, CONTROL]"


@dataclass
class AnalysisOptions:
    """The design file's `[analysis]` section (every field but set_in_design is an option)."""
    ALIASES: ClassVar[dict[str, str]] = ALIASES

    # participant kept if >= this share of attention checks passed
    attention_threshold: float = spec(1.0, ge=0, le=1, message=_FRACTION)
    rt_floor_ms: float = spec(200.0, ge=0)  # responses faster than this are removed (response-level rule)
    # "" = the task's own: target_hit (identify), rating (rate), chosen_defense (compare)
    primary_outcome: str = spec("", choices=OUTCOMES, message=_OUTCOME, none="")
    # each_vs_reference | all_pairs (Holm within it), or [TREATMENT, CONTROL]
    primary_contrast: str | tuple[str, str] = spec(CONTRASTS[0], none=CONTRASTS[0], check=_contrast, expects=_CONTRAST)
    reference_defense: str = spec("", none="")  # "" = normal if present, else the first defense in sorted order
    # ordered exclusion rules, applied as written ([[analysis.exclusions]] tables, docs/analysis.md);
    # unset = attention_checks (attention_threshold), then rt_floor (rt_floor_ms)
    exclusions: tuple[dict[str, Any], ...] | None = spec(None, check=_exclusions, typed=False)
    # not an option: the options the design file set (None: not recorded)
    set_in_design: tuple[str, ...] | None = spec(None, internal=True)

    def __post_init__(self) -> None:
        try:
            check_instance(self)
        except ValidationError as exc:
            raise OptionError(exc.path, exc.problem) from None
        settle_exclusions(self)
        if self.set_in_design is not None:
            self.set_in_design = tuple(ALIASES.get(n, n) for n in self.set_in_design if ALIASES.get(n, n) in OPTION_NAMES)

    def values(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in OPTION_NAMES}

    def exclusion_rules(self) -> tuple[dict[str, Any], ...]:
        return effective_exclusions(self)


OPTION_NAMES = tuple(f.name for f in fields(AnalysisOptions) if f.name != "set_in_design")
DEFAULTS = {f.name: f.default for f in fields(AnalysisOptions) if f.name in OPTION_NAMES}


def option(name: str) -> Any:
    """The option's field (default and rules) for another dataclass that carries the same option
    (the analysis's AnalysisConfig), so both check it the same way."""
    f = next(f for f in fields(AnalysisOptions) if f.name == name)
    return spec(f.default, **{k: v for k, v in f.metadata.items() if k != "typed"}, typed=f.metadata.get("typed", True))


def check(name: str, value: Any) -> Any:
    """The option's value in its one representation, or OptionError naming the option."""
    if name not in OPTION_NAMES:
        raise OptionError(name, "unknown analysis option")
    try:
        return check_field(AnalysisOptions, name, value)
    except ValidationError as exc:
        raise OptionError(exc.path, exc.problem) from None


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
        raise OptionError(join(where, exc.path), exc.problem) from None
    try:
        out = dict(values, exclusions=rules.check_list(values["exclusions"], f"{where}.exclusions", short))
    except rules.RuleError as exc:
        msg = str(exc)
        raise OptionError.from_message(msg if msg.startswith(f"{where}.") else f"{where}.{msg}") from None
    return out


def parse_section(table: dict[str, Any], task: str | None = None, where: str = "analysis") -> AnalysisOptions:
    """The design file's `[analysis]` table: known options only, each checked (contracts/validation.py);
    `task` (when given) must agree with primary_outcome."""
    try:
        values = resolve_table(canonical(AnalysisOptions, table, where), where)
        opts = build(AnalysisOptions, values, where)
    except ValidationError as exc:
        raise OptionError(exc.path, exc.problem) from None
    opts.set_in_design = tuple(values)
    own = TASK_OUTCOMES.get(task or "")
    if own and opts.primary_outcome not in ("", own) and not (task == "identify" and opts.primary_outcome == "original_hit"):
        raise OptionError(f"{where}.primary_outcome",
                          f"the {task} task's outcome is {own}, got {opts.primary_outcome!r}")
    return opts


def check_defenses(opts: AnalysisOptions, defenses: list[str], where: str = "analysis") -> None:
    """The reference and a pre-registered pair must be defenses the study serves."""
    if opts.reference_defense and opts.reference_defense not in defenses:
        raise OptionError(f"{where}.reference_defense", f"{opts.reference_defense!r} is not one of the study's "
                                                        f"defenses {list(defenses)}")
    if isinstance(opts.primary_contrast, tuple):
        bad = [x for x in opts.primary_contrast if x not in defenses]
        if bad:
            raise OptionError(f"{where}.primary_contrast", f"{bad[0]!r} is not one of the study's defenses "
                                                           f"{list(defenses)}")


def reference_for(defenses: list[str], chosen: str = "") -> str:
    """The reference defense: the chosen one, else normal if present, else the first in sorted order."""
    if chosen:
        return chosen
    return DEFAULT_REFERENCE if DEFAULT_REFERENCE in defenses else sorted(defenses)[0]
