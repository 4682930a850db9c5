"""Locked studies (issue 17, item 2): once the first participant arrived, a study's design and stimulus set
cannot change; every exported row carries the design's hash; a change is a new version (clone), linked to
the old one. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from study_fixtures import start_participant, write_design
from test_app_admin import complete, login


def _study(app, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Study

    return db.session.get(Study, study_id)


def test_design_is_locked_once_someone_arrived(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import StudyLockedError

    with app.app_context():  # before anyone arrived the researcher may still fix a typo
        st = _study(app, study_id)
        st.seed = st.seed + 1
        db.session.commit()
    start_participant(client, study_id, "FIRST")
    with app.app_context():
        st = _study(app, study_id)
        before = (st.design_json, st.seed)
        st.design_json = json.dumps({**json.loads(st.design_json), "name": "renamed after the start"})
        with pytest.raises(StudyLockedError, match="study clone"):
            db.session.commit()
        db.session.rollback()
        st = _study(app, study_id)
        st.seed = st.seed + 1
        with pytest.raises(StudyLockedError):
            db.session.commit()
        db.session.rollback()
        st = _study(app, study_id)
        assert (st.design_json, st.seed) == before
        st.status = "closed"  # opening and closing stay possible
        db.session.commit()


def test_rows_carry_the_design_hash_and_clone_makes_a_linked_version(app, client, study_id, stimulus_dir, tmp_path):
    from advlegit.study_app.cli import cli
    from advlegit.study_app.studies import design_hash

    complete(client, study_id, "P1")
    login(app, client)
    rows = list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{study_id}/export.csv").get_data(as_text=True))))
    with app.app_context():
        st = _study(app, study_id)
        expected = design_hash(json.loads(st.design_json))
    assert rows and {r["design_sha256"] for r in rows} == {expected} and len(expected) == 64

    env = {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "ADVLEGIT_INSTANCE": app.instance_path}
    changed = write_design(tmp_path / "v2.toml", "identify", trials=4)
    res = CliRunner().invoke(
        cli, ["study", "clone", study_id, "--stimuli", str(stimulus_dir), "--design", str(changed)], env=env
    )
    assert res.exit_code == 0, res.output
    new_id = res.output.strip().splitlines()[-1]
    with app.app_context():
        new = _study(app, new_id)
        assert (new.parent_study_id, new.version) == (study_id, 2)
        assert new.design_sha256 != expected
    page = client.get(f"/admin/studies/{new_id}").get_data(as_text=True)
    assert "a new version of" in page and study_id in page
    res = CliRunner().invoke(cli, ["study", "clone", "nope", "--stimuli", str(stimulus_dir)], env=env)
    assert res.exit_code == 1 and "no study" in res.output
    res = CliRunner().invoke(cli, ["study", "clone", study_id, "--stimuli", str(stimulus_dir)], env=env)
    assert res.exit_code == 0  # the same design again: a new version with the same hash
    with app.app_context():
        again = _study(app, res.output.strip().splitlines()[-1])
        assert again.design_sha256 == expected and again.version == 2
