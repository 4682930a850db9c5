"""The shipped data folders (migrations/, examples/): inside the package once installed, the repository's
top-level folders in a source checkout."""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder `name` ("migrations" or "examples"), installed copy first."""
    for base in (_HERE, _HERE.parent):
        if (base / name).is_dir() and (base is _HERE or (base / "pyproject.toml").is_file()):
            return base / name
    raise FileNotFoundError(f"advlegit's {name}/ folder is missing from {_HERE} (a broken install?)")
