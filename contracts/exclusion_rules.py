"""The pre-registrable exclusion rules of a study design's `[analysis]` section (contract 3, with
contracts/analysis_options.py): their names, parameters, defaults, checks and the export columns each
reads. Imports nothing of the project. The analysis applies them (analysis/exclusions.py) in the order
the design lists them:

    [[analysis.exclusions]]
    rule = "attention_checks"
    min_pass_rate = 0.75

    [[analysis.exclusions]]
    rule = "rt_floor"
    ms = 200

A rule is a plain dict {"rule": NAME, PARAM: VALUE, ...}, every parameter filled in once checked, so the
stored design (JSON) and the plan hash say exactly what was applied.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class RuleError(ValueError):
    """A bad exclusion rule; the message starts with the key it is about."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # fraction (0..1) | duration (>= 0, finite) | frames (>= 0, finite)
    default: float
    meaning: str


@dataclass(frozen=True)
class Rule:
    name: str
    level: str  # participant (removes everyone of theirs) | response (removes single trials)
    label: str  # the exclusion table's `rule` column
    params: tuple[Param, ...]
    columns: tuple[str, ...]  # optional export columns it reads (an export without them cannot apply it)
    meaning: str


# Zimmermann, Borowski et al. 2021 excluded instruction time < 15-20 s and total time outside 90-900 s.
RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("attention_checks", "participant", "failed attention checks",
         (Param("min_pass_rate", "fraction", 1.0, "kept if at least this share of attention checks passed"),),
         (),  # its columns are in every export (and a study may have no checks)
         "participants who passed less than min_pass_rate of their attention checks"),
    Rule("rt_floor", "response", "response faster than RT floor",
         (Param("ms", "duration", 200.0, "responses faster than this many ms are removed"),),
         (), "single responses with rt_ms below ms"),
    Rule("instruction_time", "participant", "instructions read too fast",
         (Param("min_s", "duration", 15.0, "participants who spent less than this many s on the instructions"),),
         ("instructions_ms",), "participants whose instructions_ms is below min_s seconds"),
    Rule("total_time", "participant", "total time outside window",
         (Param("min_s", "duration", 90.0, "shortest session kept, in s"),
          Param("max_s", "duration", 900.0, "longest session kept, in s")),
         ("session_ms",), "participants whose session_ms is outside [min_s, max_s] seconds"),
    Rule("straight_lining", "participant", "straight-lining",
         (Param("max_share", "fraction", 0.9, "the most frequent answer may fill at most this share of main trials"),),
         ("response",), "participants who gave the same answer on more than max_share of their main trials"),
    Rule("focus_loss", "response", "page lost focus during trial", (), ("focus_lost",),
         "single trials during which the page lost focus or visibility (focus_lost true)"),
    Rule("exposure_timing", "response", "exposure timing missed",
         (Param("max_miss_frames", "frames", 1.0, "largest miss kept, in frames of the participant's own display "
                                                  "(1000 / refresh_hz ms each, + 0.5 ms for the browser's "
                                                  "timestamp rounding)"),),
         ("exposure_ms_requested", "exposure_ms_measured", "refresh_hz"),
         "timed trials (exposure_ms_requested > 0) whose measured exposure missed the request by more than "
         "max_miss_frames frames of the participant's measured display, or was not measured"),
)}
# The shorter [analysis] options that are a rule's parameter (kept: every design before the list used them).
SHORTHANDS = {"attention_threshold": ("attention_checks", "min_pass_rate"), "rt_floor_ms": ("rt_floor", "ms")}


def _value(key: str, p: Param, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RuleError(f"{key}: expected a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):  # the design is stored as JSON, which has no nan or inf
        raise RuleError(f"{key}: expected a finite number, got {v!r}")
    if p.kind == "fraction" and not 0.0 <= v <= 1.0:
        raise RuleError(f"{key}: must be a fraction between 0 and 1, got {v!r}")
    if p.kind in ("duration", "frames") and v < 0:
        raise RuleError(f"{key}: must be >= 0, got {v!r}")
    return v


def check_rule(raw: Any, where: str, fill: bool = True) -> tuple[dict[str, Any], set[str]]:
    """One rule: ({"rule": name, every parameter}, the parameters it gave). `where` names it in errors,
    e.g. `analysis.exclusions[2]` (counted from 1). fill=False: the parameters it gave only."""
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: must be a table with a `rule` key, got {raw!r}")
    name = raw.get("rule")
    if name is None:
        raise RuleError(f"{where}.rule: required (one of {', '.join(RULES)})")
    if not isinstance(name, str) or name not in RULES:
        raise RuleError(f"{where}.rule: unknown rule {name!r} (allowed: {', '.join(RULES)})")
    rule = RULES[name]
    allowed = {p.name: p for p in rule.params}
    unknown = sorted(k for k in raw if k != "rule" and k not in allowed)
    if unknown:
        raise RuleError(f"{where}.{unknown[0]}: unknown parameter of rule {name!r} (allowed: "
                        f"{', '.join(allowed) or 'none'})")
    out: dict[str, Any] = {"rule": name}
    for p in rule.params:
        out[p.name] = _value(f"{where}.{p.name}", p, raw[p.name]) if p.name in raw else p.default
    if name == "total_time" and out["min_s"] >= out["max_s"]:
        raise RuleError(f"{where}.max_s: must be greater than min_s ({out['min_s']:g}), got {out['max_s']:g}")
    given = {k for k in raw if k != "rule"}
    if not fill:
        out = {k: v for k, v in out.items() if k == "rule" or k in given}
    return out, given


def check_list(raw: Any, where: str = "analysis.exclusions", shorthands: dict[str, float] | None = None,
               strict: bool = True, fill: bool = True) -> tuple[dict[str, Any], ...]:
    """The ordered list, every rule checked and complete; each rule at most once. A parameter a rule
    leaves out that has a shorthand option takes the shorthand's value (`shorthands`, e.g.
    {"rt_floor_ms": 300}). strict (the shorthands were set in the same table as the list): a shorthand
    that disagrees with the rule's own parameter, or names a rule the list lacks, is an error.
    fill=False: checked, but each rule keeps only the parameters it gave (completed later)."""
    if isinstance(raw, tuple):
        raw = list(raw)
    if not isinstance(raw, list):
        raise RuleError(f"{where}: must be a list of rule tables ([[analysis.exclusions]]), got {raw!r}")
    shorthands = dict(shorthands or {})
    rules, seen = [], {}
    for i, item in enumerate(raw, 1):
        rule, given = check_rule(item, f"{where}[{i}]", fill)
        if rule["rule"] in seen:
            raise RuleError(f"{where}[{i}].rule: {rule['rule']!r} is already rule {seen[rule['rule']]} of the list")
        seen[rule["rule"]] = i
        for short, (rname, pname) in SHORTHANDS.items():
            if rname != rule["rule"] or short not in shorthands:
                continue
            v = shorthands[short]
            if pname not in given:
                rule[pname] = v
            elif strict and float(v) != rule[pname]:
                raise RuleError(f"{where}[{i}].{pname}: {rule[pname]:g} disagrees with {short} = {v:g} in the "
                                "same table; give it once")
        rules.append(rule)
    for short, (rname, _) in SHORTHANDS.items():
        if strict and short in shorthands and rname not in seen:
            raise RuleError(f"{short}: set, but {where} has no {rname!r} rule for it to apply to")
    return tuple(rules)


def default_list(attention_threshold: float, rt_floor_ms: float) -> tuple[dict[str, Any], ...]:
    """What a design without `exclusions` gets (every study before the list existed): attention checks,
    then the RT floor."""
    return ({"rule": "attention_checks", "min_pass_rate": float(attention_threshold)},
            {"rule": "rt_floor", "ms": float(rt_floor_ms)})


def criterion(rule: dict[str, Any]) -> str:
    """The exclusion table's `criterion` for a rule (what is removed)."""
    n = rule["rule"]
    if n == "attention_checks":
        return f"pass rate < {rule['min_pass_rate']:g}"
    if n == "rt_floor":
        return f"rt_ms < {rule['ms']:g}"
    if n == "instruction_time":
        return f"instructions_ms < {rule['min_s'] * 1000:g}"
    if n == "total_time":
        return f"session_ms outside [{rule['min_s'] * 1000:g}, {rule['max_s'] * 1000:g}]"
    if n == "straight_lining":
        return f"one answer on > {rule['max_share']:g} of main trials"
    if n == "focus_loss":
        return "focus_lost"
    if n == "exposure_timing":
        return (f"|exposure_ms_measured - exposure_ms_requested| > {rule['max_miss_frames']:g} x 1000/refresh_hz "
                "+ 0.5 ms (timed trials)")
    raise RuleError(f"unknown rule {n!r}")


def describe(rule: dict[str, Any]) -> str:
    """One sentence for a plan or a methods paragraph."""
    n = rule["rule"]
    if n == "attention_checks":
        return f"participants passing fewer than {rule['min_pass_rate']:.0%} of their attention checks"
    if n == "rt_floor":
        return f"responses faster than {rule['ms']:g} ms"
    if n == "instruction_time":
        return f"participants who spent less than {rule['min_s']:g} s on the instructions"
    if n == "total_time":
        return f"participants whose session (Start to last answer) was shorter than {rule['min_s']:g} s or " \
               f"longer than {rule['max_s']:g} s"
    if n == "straight_lining":
        return f"participants who gave the same answer on more than {rule['max_share']:.0%} of their main trials"
    if n == "focus_loss":
        return "trials during which the page lost focus or visibility"
    if n == "exposure_timing":
        return (f"timed trials whose measured exposure missed the requested one by more than "
                f"{rule['max_miss_frames']:g} frame{'' if rule['max_miss_frames'] == 1 else 's'} of the "
                "participant's display (or was not measured)")
    raise RuleError(f"unknown rule {n!r}")
