"""identify answers with the keys 0-9 (one button per class), and its analysis reads target hits
against chance 1/K: a stimulus set of more than 10 classes is refused for it when the study is
created, with the class count named and nothing written; other tasks still take such a set."""
from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import func, select
from study_fixtures import create_study

ELEVEN = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck", "tree"]


@pytest.fixture
def eleven_class_set(stimulus_dir, tmp_path):
    out = shutil.copytree(stimulus_dir, tmp_path / "eleven")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["dataset"]["classes"] = ELEVEN
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def _count(app, model) -> int:
    from advlegit.study_app.db import db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_identify_refuses_a_set_of_more_than_ten_classes_and_writes_nothing(app, eleven_class_set, tmp_path):
    from advlegit.study_app.design import DesignError
    from advlegit.study_app.models import StimulusSet, Study

    with pytest.raises(DesignError, match=r"identify task serves stimulus sets of at most 10 classes.*has 11 classes"):
        create_study(app, eleven_class_set, tmp_path, "identify", trials=4)
    assert _count(app, Study) == 0 and _count(app, StimulusSet) == 0


def test_rate_takes_a_set_of_more_than_ten_classes(app, eleven_class_set, tmp_path):
    assert create_study(app, eleven_class_set, tmp_path, "rate", trials=4)


def test_identify_takes_ten_named_classes(app, stimulus_dir, tmp_path):
    shutil.copytree(stimulus_dir, tmp_path / "ten")
    manifest = json.loads((tmp_path / "ten" / "manifest.json").read_text())
    manifest["dataset"]["classes"] = ELEVEN[:10]
    (tmp_path / "ten" / "manifest.json").write_text(json.dumps(manifest))
    assert create_study(app, tmp_path / "ten", tmp_path, "identify", trials=4)
