"""advlegit: human-subject studies of adversarial examples against defended classifiers.

Import the parts as ``advlegit.generation``, ``advlegit.study_app``, ``advlegit.analysis``,
``advlegit.demo`` and ``advlegit.contracts``: a researcher's own ``analysis.py`` or ``demo.py`` next to a
notebook cannot shadow them. An installed wheel holds them inside this folder; a source checkout keeps
them as the repository's top-level folders (DESIGN.md's layout), so there this package's search path
also covers the repository root. Nothing heavy is imported here.
"""
from __future__ import annotations

import os as _os
from pathlib import Path as _Path

# OpenMP threads that finish their share of an op sleep instead of spinning (libgomp's default spins
# ~300k iterations per barrier). On a CPU shared with other jobs the spinning thread steals the core
# the other thread needs, and torch's 2-thread training ran 2-4x slower (BENCHMARKS.md, "demo first
# run"). Same thread count, same work split, so the same bits. Read once when torch loads libgomp:
# set when advlegit is imported, before anything of it imports torch; a value you set yourself wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_ROOT = _Path(__file__).resolve().parent.parent
if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "contracts" / "__init__.py").is_file():
    __path__.append(str(_ROOT))  # source checkout (editable install or PYTHONPATH)


def __getattr__(name: str):
    if name == "main":  # console scripts written before the package existed call advlegit:main
        from .cli import main
        return main
    raise AttributeError(f"module 'advlegit' has no attribute {name!r}")
