"""Fixtures: small simulated exports written to disk in the study app's format."""
from __future__ import annotations

import pandas as pd
import pytest

from advlegit.analysis.simulate import SimDesign, simulate, write_export

DEFENSES = ("normal", "gradreg_y", "adv")


def identify_design(**kw) -> SimDesign:
    base = dict(defenses=DEFENSES, effects={"gradreg_y": 0.8}, n_participants=40, trials_per_participant=24,
                n_practice=2, n_attention=3, inattentive_rate=0.1, incomplete_rate=0.1,
                review_excluded_rate=0.1, attacks=("tgsm", "fgsm"), budgets=(0.1, 0.3))
    base.update(kw)
    return SimDesign(**base)


@pytest.fixture(scope="session")
def identify_df() -> pd.DataFrame:
    return simulate(identify_design(), seed=11)


@pytest.fixture(scope="session")
def mixed_export(tmp_path_factory) -> str:
    """Responses of every task in the analysis registry, in one export (different participants)."""
    from advlegit.analysis.tasks import TASKS

    parts = []
    for i, task in enumerate(TASKS):
        d = simulate(identify_design(task=task, n_participants=20, study_id="mix"), seed=100 + i)
        d["participant_id"] = task[:2] + d["participant_id"]
        parts.append(d)
    path = tmp_path_factory.mktemp("exports") / "mixed.csv"
    write_export(pd.concat(parts, ignore_index=True), path)
    return str(path)


@pytest.fixture(scope="session")
def identify_export(tmp_path_factory, identify_df) -> str:
    path = tmp_path_factory.mktemp("exports") / "identify.csv"
    write_export(identify_df, path)
    return str(path)
