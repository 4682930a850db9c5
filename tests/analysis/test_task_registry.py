"""Every task in the analysis registry (analysis/tasks) through the pipeline: a simulated export of it
gives its own report section with a pre-registered primary table, and its summary is keyed by its name.
A new task is covered by adding it to the registry (with `simulated=True` once simulate.py makes it)."""
from __future__ import annotations

import pytest

from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.pipeline import run_analysis
from advlegit.analysis.simulate import SimDesign, simulate
from advlegit.analysis.tasks import TASKS

FAST = dict(mixed_model=False, r_crosscheck="off", n_boot=50)
DEFENSES = ("normal", "gradreg_y", "adv")


@pytest.mark.parametrize("task", list(TASKS))
def test_every_registered_task_gets_its_section_and_primary_test(task, tmp_path):
    plugin = TASKS[task]
    assert plugin.simulated, f"{task}: analysis/simulate.py cannot make it, so no suite covers it"
    df = simulate(SimDesign(task=task, defenses=DEFENSES, effects={"gradreg_y": 1.0}, n_participants=16,
                            trials_per_participant=12, n_attention=2), seed=3)
    out = run_analysis(df, AnalysisConfig(**FAST), tmp_path)
    assert out.summary["tasks"] == [task]
    [section] = [s for s in out.sections if s.title.startswith(f"{task}:")]
    primary = next(t for t in section.tables if t.name == f"{task}_primary")
    assert len(primary.frame) == 2  # each_vs_reference over three defenses
    assert out.summary["primary"][task] and out.summary["reference"][task] == "normal"
    assert all(t.name.startswith(f"{task}_") for t in section.tables)


def test_explain_section_finds_the_map_effect_and_only_it(tmp_path):
    """Ratings of one model's maps shifted up: the explain primary test finds that model above the
    reference and not the other one; per-model means carry intervals."""
    df = simulate(SimDesign(task="explain", defenses=DEFENSES, effects={"gradreg_y": 1.5}, n_participants=30,
                            trials_per_participant=12), seed=5)
    out = run_analysis(df, AnalysisConfig(**FAST), tmp_path)
    prim = {r["contrast"]: r for r in out.summary["primary"]["explain"]}
    assert prim["gradreg_y vs normal"]["significant"] and prim["gradreg_y vs normal"]["mean_diff"] > 0
    assert not prim["adv vs normal"]["significant"]
    desc = {r["defense"]: r for r in out.summary["rates"]["explain"]}
    assert set(desc) == set(DEFENSES)
    assert all(r["ci_low"] < r["mean"] < r["ci_high"] for r in desc.values())
    assert (tmp_path / "explain_ratings.png").is_file()


def test_the_simulator_refuses_a_task_it_does_not_know():
    with pytest.raises(ValueError, match="unknown task 'guess'"):
        simulate(SimDesign(task="guess"))
