"""Study designs for the demo: the example designs, widened to every defense the stimulus set holds.

The example designs in examples/ compare the four conditions of Ross & Doshi-Velez's human study;
the demo shows every trained defense instead, so the number of trials follows the number of
defenses and the size of the stimulus set. The derived files are written next to the demo's output
(so a researcher can read exactly what was run) with a header saying where they came from.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from advlegit.resources import resource_dir

EXAMPLES = resource_dir("examples")
TASKS = ("identify", "rate", "compare")
TRIALS_PER_CELL = 3  # identify/rate: 3 images per defense; compare: each defense pair once, then fill


class DemoDesignError(ValueError):
    """The stimulus set is too small for a demo study of some task."""


def cells(task: str, n_defenses: int, n_kinds: int = 1) -> int:
    """Cells the allocator balances: defenses (compare: defense pairs) x stimulus kinds, since the
    study app makes each control kind (control_flip, control_noise) a cell of its own."""
    return (n_defenses * (n_defenses - 1) // 2 if task == "compare" else n_defenses) * n_kinds


def kinds_served(base: dict[str, Any], manifest: dict[str, Any]) -> int:
    """How many stimulus kinds the design serves: its [stimuli] kinds, else every kind in the set."""
    listed = base.get("stimuli", {}).get("kinds")
    if listed:
        return len(listed)
    return len({s.get("kind", "adversarial") for s in manifest.get("stimuli", [])}) or 1


def trial_options(task: str, base: dict[str, Any], n_defenses: int, n_sources: int, n_kinds: int = 1) -> list[int]:
    """Trial counts to try, largest first: multiples of the cells that leave room for the clean images
    (practice and attention checks use source digits the participant never sees attacked)."""
    per_cell = cells(task, n_defenses, n_kinds)
    clean = (base["study"]["practice"] + base["study"]["attention_checks"]) * (2 if task == "compare" else 1)
    wanted = 1 if task == "compare" else TRIALS_PER_CELL
    most = min(wanted, (n_sources - clean) // per_cell)
    if most < 1:
        raise DemoDesignError(
            f"the {task} study needs {per_cell} + {clean} different source digits for {n_defenses} defenses "
            f"x {n_kinds} stimulus kinds; "
            f"the stimulus set has {n_sources} (raise [stimuli] per_class in the config, or list fewer defenses)")
    return [k * per_cell for k in range(most, 0, -1)]


def derive(task: str, defended: list[str], trials: int) -> dict[str, Any]:
    base = load_example(task)
    base["study"]["defenses"] = list(defended)
    base["study"]["trials"] = trials
    analysis = base.setdefault("analysis", {})
    if analysis.get("reference_defense") not in defended:
        analysis["reference_defense"] = defended[0]
    return base


def load_example(task: str) -> dict[str, Any]:
    with (EXAMPLES / f"design-{task}.toml").open("rb") as f:
        return tomllib.load(f)


def write_toml(data: dict[str, Any], path: Path, header: str) -> Path:
    """Write a design file (tomli-w), under a comment header saying where it came from."""
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comments + "\n" + tomli_w.dumps(data), encoding="utf-8")
    return path
