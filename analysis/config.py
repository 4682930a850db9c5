"""Analysis options: the `[analysis]` section of a study design file, plus CLI overrides."""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.errors import AnalysisError

# Defaults used when a study does not pre-register its own; the report states every value.
DEFAULT_REFERENCE = "normal"
DEFAULT_PRIMARY = ("gradreg_y", "normal")
FAMILIES = ("each_vs_reference", "all_pairs")
# the study app's design file spells some options differently (study_app/design.py)
ALIASES = {"attention_threshold": "attention_min_pass_rate"}


@dataclass
class AnalysisConfig:
    attention_min_pass_rate: float = 0.75  # participant kept if >= this share of checks passed
    rt_floor_ms: float = 200.0  # responses faster than this are removed (response-level rule)
    complete_states: tuple[str, ...] = ("data_complete", "code_issued")  # participant states that count as finished
    reference_defense: str | None = None  # None: DEFAULT_REFERENCE if present, else first defense
    primary_contrast: tuple[str, str] | None = None  # (treatment, control) on target_hit
    # study-app designs pre-register a family instead: each_vs_reference | all_pairs (Holm within it)
    primary_family: str | None = None
    primary_outcome: str = "target_hit"  # target_hit | original_hit | rating | chosen_defense
    alpha: float = 0.05  # two-sided significance level; intervals are 1 - alpha
    n_boot: int = 1000  # bootstrap resamples for cluster-bootstrap intervals
    seed: int = 0  # bootstrap and subsampling seed (the report is reproducible)
    r_crosscheck: str = "auto"  # auto | on | off
    mixed_model: bool = True  # BinomialBayesMixedGLM / MixedLM fits (slowest part)
    mixed_model_max_participants: int = 100  # VB fit cost grows with rows; 0 = use everyone
    # which options came from the user (vs defaults), so the report can say so
    explicit: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not 0.0 <= self.attention_min_pass_rate <= 1.0:
            raise AnalysisError("attention_min_pass_rate must be between 0 and 1")
        if not 0.0 < self.alpha < 1.0:
            raise AnalysisError("alpha must be between 0 and 1")
        if self.rt_floor_ms < 0:
            raise AnalysisError("rt_floor_ms must be >= 0")
        if self.n_boot < 50:
            raise AnalysisError("n_boot must be at least 50")
        if self.r_crosscheck not in ("auto", "on", "off"):
            raise AnalysisError("r_crosscheck must be auto, on or off")
        if isinstance(self.primary_contrast, str):
            if self.primary_contrast not in FAMILIES:
                raise AnalysisError("primary_contrast must be two defense names or one of "
                                    + ", ".join(FAMILIES))
            self.primary_family, self.primary_contrast = self.primary_contrast, None
        if self.primary_family is not None and self.primary_family not in FAMILIES:
            raise AnalysisError("primary_family must be one of " + ", ".join(FAMILIES))
        if self.primary_outcome not in ("target_hit", "original_hit", "rating", "chosen_defense"):
            raise AnalysisError("primary_outcome must be target_hit, original_hit, rating or chosen_defense")
        if self.reference_defense == "":
            self.reference_defense = None
        if self.primary_contrast is not None:
            pc = tuple(self.primary_contrast)
            if len(pc) != 2 or pc[0] == pc[1]:
                raise AnalysisError("primary_contrast must name two different defenses")
            self.primary_contrast = (str(pc[0]), str(pc[1]))
        self.complete_states = tuple(self.complete_states)

    def as_rows(self) -> list[tuple[str, str, str]]:
        """(option, value, source) for the report's options table."""
        rows = []
        for f in dataclasses.fields(self):
            if f.name == "explicit":
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = ", ".join(map(str, value))
            rows.append((f.name, str(value), "study/CLI" if f.name in self.explicit else "default"))
        return rows


def _fields() -> set[str]:
    return {f.name for f in dataclasses.fields(AnalysisConfig)} - {"explicit"}


def section_values(section: dict, source: str) -> dict[str, Any]:
    """Options from an [analysis] table (TOML design file or the export's .study.json)."""
    values = {ALIASES.get(k, k): v for k, v in section.items()}
    unknown = set(values) - _fields()
    if unknown:
        raise AnalysisError(f"{source}: unknown [analysis] options: {', '.join(sorted(unknown))}")
    if "primary_contrast" in values and isinstance(values["primary_contrast"], list):
        values["primary_contrast"] = tuple(values["primary_contrast"])
    return values


def load_config(path: Path | None = None, companion: Path | None = None, **overrides: Any) -> AnalysisConfig:
    """Read `[analysis]` from a TOML file (if given) or else from the export's companion
    FILE.study.json (written by `advlegit export`), then apply non-None overrides."""
    values: dict[str, Any] = {}
    if path is None and companion is not None and companion.is_file():
        import json
        try:
            design = json.loads(companion.read_text()).get("design") or {}
        except (json.JSONDecodeError, AttributeError) as exc:
            raise AnalysisError(f"{companion}: not a valid study companion file: {exc}") from None
        values.update(section_values(design.get("analysis") or {}, str(companion)))
    if path is not None:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise AnalysisError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise AnalysisError(f"config file {path} is not valid TOML: {exc}") from None
        section = doc.get("analysis", {})
        if not isinstance(section, dict):
            raise AnalysisError(f"{path}: [analysis] must be a table")
        values.update(section_values(section, str(path)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - _fields()
    if unknown:
        raise AnalysisError(f"unknown analysis options: {', '.join(sorted(unknown))}")
    try:
        cfg = AnalysisConfig(**values)
    except TypeError as exc:
        raise AnalysisError(f"bad analysis options: {exc}") from None
    cfg.explicit = set(values)
    return cfg
