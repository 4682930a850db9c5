"""Containers the analyses return and the report renders."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Table:
    name: str  # file stem under tables/
    title: str
    frame: pd.DataFrame
    note: str = ""  # how to read it: test, correction, caveats


@dataclass
class Section:
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)
    notes: list[str] = field(default_factory=list)
