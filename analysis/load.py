"""Read an export (CSV or JSON lines) into a typed, validated tidy frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from advlegit.analysis.errors import AnalysisError
from advlegit.analysis.schema import (
    BOOL_COLUMNS,
    COLUMN_NAMES,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    REQUIRED_ALWAYS,
    REQUIRED_BY_TASK,
    STR_COLUMNS,
    TASK_TYPES,
    TRIAL_KINDS,
)

_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f"}


def read_export(path: str | Path) -> pd.DataFrame:
    """Load and validate an export file; raise AnalysisError naming any problem."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"export file not found: {path}")
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            raw = pd.read_json(path, lines=True, dtype=False)
            raw = raw.astype(object).where(raw.notna(), None)
            raw = raw.map(lambda v: "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)))
        else:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    except pd.errors.EmptyDataError:
        raise AnalysisError(f"{path}: the export is empty (no header, no rows)") from None
    except ValueError as exc:
        raise AnalysisError(f"{path}: cannot parse the export: {exc}") from None
    return coerce(raw, source=str(path))


def _to_bool(col: pd.Series, name: str, source: str) -> pd.Series:
    # map the few distinct spellings, not every cell (exports have 10^5 rows)
    mapping = {}
    for v in col.unique():
        t = "" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v).strip().lower()
        if t in _TRUE:
            mapping[v] = True
        elif t in _FALSE:
            mapping[v] = False
        elif t in ("", "nan", "none"):
            mapping[v] = None
        else:
            raise AnalysisError(f"{source}: column {name!r} has non-boolean values, e.g. {v!r}")
    return col.map(mapping).astype("boolean")


def _to_num(col: pd.Series, name: str, source: str, integer: bool) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col):
        num = col.astype(float)
    else:
        empty = (col == "") | col.isna()
        num = pd.to_numeric(col.mask(empty), errors="coerce")
        bad = num.isna() & ~empty
        if bad.any():
            vals = col[bad]
            vals = vals[vals.astype(str).str.strip() != ""]
            if len(vals):
                raise AnalysisError(f"{source}: column {name!r} has non-numeric values, e.g. {vals.iloc[0]!r}")
    if integer:
        if (num.dropna() % 1 != 0).any():
            raise AnalysisError(f"{source}: column {name!r} must hold integers")
        return num.astype("Int64")
    return num.astype(float)


def coerce(raw: pd.DataFrame, source: str = "export") -> pd.DataFrame:
    """Type the columns of an all-string frame and check it is analysable."""
    if len(raw.columns) == 0:
        raise AnalysisError(f"{source}: the export has no columns")
    missing = [c for c in REQUIRED_ALWAYS if c not in raw.columns]
    if missing:
        raise AnalysisError(f"{source}: the export is missing required columns: {', '.join(missing)}")
    if len(raw) == 0:
        raise AnalysisError(f"{source}: the export has no rows (empty study)")
    df = raw.copy()
    for c in df.columns:
        if c in BOOL_COLUMNS:
            df[c] = _to_bool(df[c], c, source)
        elif c in INT_COLUMNS:
            df[c] = _to_num(df[c], c, source, integer=True)
        elif c in FLOAT_COLUMNS or (c.startswith("model_") and "_confidence" in c):
            df[c] = _to_num(df[c], c, source, integer=False)
        elif c.startswith("model_") and ("_label" in c):
            df[c] = _to_num(df[c], c, source, integer=True)
        elif c in STR_COLUMNS or df[c].dtype == object:
            df[c] = df[c].fillna("").astype(str)
    tasks = set(df["task_type"].unique())
    unknown = sorted(tasks - set(TASK_TYPES))
    if unknown:
        raise AnalysisError(
            f"{source}: unknown task types: {', '.join(map(repr, unknown))} "
            f"(expected one of {', '.join(TASK_TYPES)})")
    kinds = sorted(set(df["trial_kind"].unique()) - set(TRIAL_KINDS))
    if kinds:
        raise AnalysisError(f"{source}: unknown trial kinds: {', '.join(map(repr, kinds))}")
    for task in sorted(tasks):
        need = [c for c in REQUIRED_BY_TASK[task] if c not in df.columns]
        if need:
            raise AnalysisError(
                f"{source}: {task} responses need columns that are missing: {', '.join(need)}")
    if (df["participant_id"] == "").any():
        raise AnalysisError(f"{source}: some rows have an empty participant_id")
    return _add_optional(df)


def _absent(name: str, n: int) -> pd.Series:
    """An optional column the export lacks, as if every cell were empty (simulated: nobody is a bot)."""
    if name == "simulated":
        return pd.Series([False] * n, dtype="boolean")
    if name in BOOL_COLUMNS:
        return pd.Series([pd.NA] * n, dtype="boolean")
    if name in INT_COLUMNS:
        return pd.Series([pd.NA] * n, dtype="Int64")
    if name in FLOAT_COLUMNS:
        return pd.Series(np.nan, index=range(n), dtype=float)
    return pd.Series([""] * n, dtype=object)


def _add_optional(df: pd.DataFrame) -> pd.DataFrame:
    """Every contract column is required (checked above, named when missing) or optional: an optional
    one the export lacks (an older or hand-made export without `attack`, `budget`, ...) is added empty,
    so every analysis step can read it and proceeds without its information."""
    missing = [c for c in COLUMN_NAMES if c not in df.columns]
    if not missing:
        return df
    extra = pd.DataFrame({c: _absent(c, len(df)) for c in missing})
    extra.index = df.index
    return pd.concat([df, extra], axis=1)
