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


@dataclass
class AnalysisConfig:
    attention_min_pass_rate: float = 0.75  # participant kept if >= this share of checks passed
    rt_floor_ms: float = 200.0  # responses faster than this are removed (response-level rule)
    complete_states: tuple[str, ...] = ("data_complete", "code_issued")
    reference_defense: str | None = None  # None: DEFAULT_REFERENCE if present, else first defense
    primary_contrast: tuple[str, str] | None = None  # (treatment, control) on target_hit
    alpha: float = 0.05
    n_boot: int = 1000  # bootstrap resamples for cluster-bootstrap intervals
    seed: int = 0
    r_crosscheck: str = "auto"  # auto | on | off
    mixed_model: bool = True  # BinomialBayesMixedGLM / MixedLM fits (slowest part)
    mixed_model_max_participants: int = 150  # VB fit cost grows with rows; 0 = use everyone
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


def load_config(path: Path | None = None, **overrides: Any) -> AnalysisConfig:
    """Read `[analysis]` from a TOML file (if given), then apply non-None overrides."""
    values: dict[str, Any] = {}
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
        unknown = set(section) - _fields()
        if unknown:
            raise AnalysisError(f"{path}: unknown [analysis] options: {', '.join(sorted(unknown))}")
        values.update(section)
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
