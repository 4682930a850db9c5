"""Analysis options: the study design's pre-registered `[analysis]` options (contracts/analysis_options.py,
shared with the study app's design parser) plus the analysis's computational ones, read from the export's
companion `.study.json`, a `--config` TOML file and the command line.

Every option has one name and one default, and the report states where each value came from: `study`
(set by the design's `[analysis]` section, read from the export's companion file, or by `--config`),
`command line`, or `default`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from advlegit.analysis.errors import AnalysisError
from advlegit.contracts import analysis_options as opt
from advlegit.contracts.analysis_options import ALIASES, DEFAULT_REFERENCE, TASK_OUTCOMES  # noqa: F401 (re-exported)
from advlegit.contracts.validation import ValidationError, canonical, check_instance, spec

log = logging.getLogger(__name__)
FAMILIES = opt.CONTRASTS
OUTCOMES = opt.OUTCOMES

SOURCES = ("study", "command line", "default")


@dataclass
class AnalysisConfig:
    """The design's [analysis] options (the first six: names, defaults and checks from
    contracts/analysis_options.py), then the analysis's own computational options; every value is checked
    by its field's rules (contracts/validation.py), however the config was made."""
    ALIASES: ClassVar[dict[str, str]] = ALIASES

    # participant kept if >= this share of attention checks passed
    attention_threshold: float = opt.option("attention_threshold")
    rt_floor_ms: float = opt.option("rt_floor_ms")  # responses faster than this are removed (response-level rule)
    # "" = the task's own: target_hit (identify), rating (rate), chosen_defense (compare)
    primary_outcome: str = opt.option("primary_outcome")
    # each_vs_reference | all_pairs (Holm within it), or [TREATMENT, CONTROL]
    primary_contrast: str | tuple[str, str] = opt.option("primary_contrast")
    # "" = normal if present, else the first defense in sorted order
    reference_defense: str = opt.option("reference_defense")
    # ordered exclusion rules, applied as written ([[analysis.exclusions]] tables); unset = attention_checks, then rt_floor
    exclusions: tuple[dict[str, Any], ...] | None = opt.option("exclusions")
    complete_states: tuple[str, ...] = ("data_complete", "code_issued")  # participant states that count as finished
    alpha: float = spec(0.05, gt=0, lt=1)  # two-sided significance level; every interval is 1 - alpha
    n_boot: int = spec(1000, ge=50)  # bootstrap resamples for cluster-bootstrap intervals
    seed: int = 0  # bootstrap and subsampling seed (the report is reproducible)
    # auto: lme4/ordinal beside the Python engine when R is installed and the data are small | on | off
    r_crosscheck: str = spec("auto", choices=("auto", "on", "off"))
    mixed_model: bool = True  # mixed-model fits (slowest part)
    mixed_model_max_participants: int = 0  # 0 = everyone (the default); a cap is announced at the top of the report

    def __post_init__(self) -> None:
        # where each value came from; filled by load_config (not an option itself)
        self.sources: dict[str, str] = {f: "default" for f in option_names()}
        try:
            check_instance(self)
            opt.settle_exclusions(self)
        except ValueError as exc:
            raise AnalysisError(str(exc)) from None

    # --- views -----------------------------------------------------------------------------
    @property
    def primary_family(self) -> str | None:
        """each_vs_reference | all_pairs, or None when a single contrast was pre-registered."""
        return self.primary_contrast if isinstance(self.primary_contrast, str) else None

    @property
    def level(self) -> str:
        """The interval level as people write it: '95%' for alpha = 0.05."""
        return level_label(self.alpha)

    def exclusion_rules(self) -> tuple[dict[str, Any], ...]:
        """The exclusion rules applied, in order (the design's list, or the default one)."""
        return opt.effective_exclusions(self)

    @property
    def explicit(self) -> set[str]:
        return {k for k, v in self.sources.items() if v != "default"}

    def outcome_for(self, task: str) -> str:
        o = self.primary_outcome
        if not o:
            return TASK_OUTCOMES[task]
        if task == "identify" and o in ("target_hit", "original_hit"):
            return o
        return TASK_OUTCOMES[task]  # another task's outcome cannot apply here

    def values(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in option_names()}

    def as_rows(self) -> list[tuple[str, str, str]]:
        """(option, value, source) for the report's options table."""
        rows = []
        for name, value in self.values().items():
            if name == "exclusions":
                value = (("" if self.exclusions is not None else "(the default list) ")
                         + ("; ".join(_rule_text(r) for r in self.exclusion_rules()) or "(none)"))
            elif isinstance(value, tuple):
                value = ", ".join(map(str, value))
            if value == "" and name in ("primary_outcome", "reference_defense"):
                value = "(task's own)" if name == "primary_outcome" else "(normal if present, else first)"
            rows.append((name, str(value), self.sources.get(name, "default")))
        return rows


def _rule_text(rule: dict[str, Any]) -> str:
    params = ", ".join(f"{k} = {v:g}" for k, v in rule.items() if k != "rule")
    return rule["rule"] + (f" ({params})" if params else "")


def level_label(alpha: float) -> str:
    pct = 100 * (1 - alpha)
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 1e-9 else f"{pct:g}%"


def option_names() -> list[str]:
    return [f.name for f in dataclasses.fields(AnalysisConfig)]


def defaults() -> dict[str, Any]:
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(AnalysisConfig)}


def section_values(section: dict, source: str) -> dict[str, Any]:
    """Options from an [analysis] table (TOML design file or the export's .study.json)."""
    try:  # known keys only; a list and the shorthand options beside it in the same table must agree
        return opt.resolve_table(canonical(AnalysisConfig, section, f"{source}: analysis"), f"{source}: analysis")
    except ValidationError as exc:
        raise AnalysisError(str(exc)) from None


def _apply_shorthands(values: dict[str, Any], layer: dict[str, Any], where: str) -> None:
    """A later source (a --config file, the command line) that sets rt_floor_ms or attention_threshold
    but not its own list changes that parameter of the rule in the list an earlier source gave."""
    if values.get("exclusions") is None or "exclusions" in layer:
        return
    rules = [dict(r) for r in values["exclusions"]]
    for short, (rname, pname) in opt.rules.SHORTHANDS.items():
        if layer.get(short) is None:
            continue
        hit = [r for r in rules if r["rule"] == rname]
        if not hit:
            raise AnalysisError(f"{where} {short}: the study's exclusion list has no {rname!r} rule to apply it to")
        try:
            hit[0][pname] = opt.check(short, layer[short])
        except opt.OptionError as exc:
            raise AnalysisError(f"{where} {exc}") from None
    values["exclusions"] = tuple(rules)


@dataclass
class StudyInfo:
    """What the export's companion file (or the export's columns) says about the study."""
    companion: Path | None = None  # the .study.json looked for
    companion_found: bool = False
    config_file: Path | None = None  # --config TOML, if given
    stimulus_design: str = ""  # fixed_budget | matched_norm | minimal | ross | "" (unknown)
    estimand: str = ""  # as stated by the companion, if it states one
    plan_sha256: str = ""  # pre-registered analysis plan hash named by the companion
    design: dict = dataclasses.field(default_factory=dict)


def read_companion(companion: Path | None) -> tuple[dict, bool]:
    if companion is None or not Path(companion).is_file():
        return {}, False
    try:
        doc = json.loads(Path(companion).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{companion}: not a valid study companion file: {exc}") from None
    if not isinstance(doc, dict):
        raise AnalysisError(f"{companion}: not a valid study companion file: expected an object")
    return doc, True


def study_info(companion: Path | None, config_file: Path | None = None) -> StudyInfo:
    doc, found = read_companion(companion)
    design = doc.get("design") or {}
    if not isinstance(design, dict):
        design = {}
    stim = doc.get("stimulus_design") or design.get("stimulus_design") or ""
    if isinstance(stim, dict):  # tolerate {"name": ..., "estimand": ...}
        est = stim.get("estimand", "")
        stim = stim.get("name") or stim.get("design") or ""
    else:
        est = ""
    est = doc.get("estimand") or design.get("estimand") or est or ""
    plan = doc.get("analysis_plan_sha256") or doc.get("plan_sha256") or design.get("plan_sha256") or ""
    return StudyInfo(companion=companion, companion_found=found, config_file=config_file,
                     stimulus_design=str(stim), estimand=str(est) if isinstance(est, str) else json.dumps(est),
                     plan_sha256=str(plan or ""), design=design)


def read_toml(path: Path, what: str = "config file") -> dict[str, Any]:
    """A TOML document, or an AnalysisError naming the file and what is wrong with it."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise AnalysisError(f"{what} not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AnalysisError(f"{what} {path} is not valid TOML: {exc}") from None


def _toml_analysis(path: Path) -> dict[str, Any]:
    return section_values(read_toml(path).get("analysis", {}), str(path))


def load_config(path: Path | None = None, companion: Path | None = None, **overrides: Any) -> AnalysisConfig:
    """Read `[analysis]` from the export's companion FILE.study.json (written by `advlegit export`)
    and a TOML file (if given; it wins), then apply non-None command-line overrides.

    Sources: values from either file are `study`, overrides are `command line`, the rest `default`."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    doc, found = read_companion(companion)
    if found:
        design = doc.get("design") or {}
        section = design.get("analysis") if isinstance(design, dict) else None
        section = dict(section) if isinstance(section, dict) else {}
        # which options the design file set (contracts/analysis_options.py); the study app stores every
        # option, so the others are its defaults. Companions from before set_in_design: all "study".
        set_in = section.pop("set_in_design", None)
        set_in = {ALIASES.get(k, k) for k in set_in} if isinstance(set_in, list) else None
        # a newer study app may write options this analysis does not know: leave them, say so in the log
        unknown = sorted(k for k in section if ALIASES.get(k, k) not in option_names())
        if unknown:
            log.warning("%s: [analysis] options this analysis does not use: %s", companion, ", ".join(unknown))
        section = {k: v for k, v in section.items() if k not in unknown}
        if section.get("exclusions") is not None and set_in is not None:
            # the app stores every option: a shorthand the design did not set is no rival to the list
            section = {k: v for k, v in section.items() if k not in opt.rules.SHORTHANDS or k in set_in}
        for k, v in section_values(section, str(companion)).items():
            values[k] = v
            sources[k] = "study" if set_in is None or k in set_in else "default"
    if path is not None:
        layer = _toml_analysis(Path(path))
        _apply_shorthands(values, layer, str(path) + ":")
        for k, v in layer.items():
            values[k], sources[k] = v, "study"
    try:
        cli = canonical(AnalysisConfig, {k: v for k, v in overrides.items() if v is not None}, "")
    except ValidationError as exc:
        raise AnalysisError(f"command line: {exc}") from None
    _apply_shorthands(values, cli, "command line:")
    for k, v in cli.items():
        values[k], sources[k] = v, "command line"
    # the study app writes "" for "the task's own" / "the first defense": that is the default value
    cfg = AnalysisConfig(**values)
    cfg.sources.update(sources)
    if cfg.exclusions is not None:  # a shorthand shows its rule's parameter: it has the list's source
        for short, (rname, _) in opt.rules.SHORTHANDS.items():
            if cfg.sources.get(short) == "default" and any(r["rule"] == rname for r in cfg.exclusions):
                cfg.sources[short] = cfg.sources["exclusions"]
    return cfg
