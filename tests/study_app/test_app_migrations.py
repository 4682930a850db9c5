"""`advlegit db upgrade` from an empty database produces exactly the models' schema."""
from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from study_fixtures import fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


def test_upgrade_from_empty_matches_models(empty_db, tmp_path):
    from click.testing import CliRunner

    import advlegit.study_app.models  # noqa: F401    (registers the tables)
    from advlegit.study_app.cli import cli
    from advlegit.study_app.db import db

    env = {"DATABASE_URL": empty_db, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    # The real `advlegit db upgrade` command, in-process (a subprocess would also import torch via generation).
    out = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert out.exit_code == 0, out.output
    engine = create_engine(empty_db)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert set(db.metadata.tables) <= tables
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
        assert diff == [], f"migrations differ from models: {diff}"
        # Idempotent: a second upgrade is a no-op, not an error.
        again = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
        assert again.exit_code == 0, again.output
    finally:
        engine.dispose()


def test_one_revision_chain():
    """One linear history: every revision has a single parent chain back to the initial one."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    script = ScriptDirectory.from_config(cfg)
    assert len(script.get_heads()) == 1
    assert [r.down_revision for r in script.walk_revisions()][-1] is None


def test_upgrade_from_the_first_revision_adds_the_rate_counters(empty_db, tmp_path):
    """A database created before the rate limits (revision 0001) upgrades in place."""
    from click.testing import CliRunner

    from advlegit.study_app.cli import cli

    env = {"DATABASE_URL": empty_db, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    assert CliRunner().invoke(cli, ["db", "upgrade", "--revision", "0001"], env=env).exit_code == 0
    engine = create_engine(empty_db)
    try:
        with engine.connect() as conn:
            assert "rate_counters" not in inspect(conn).get_table_names()
        out = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
        assert out.exit_code == 0, out.output
        with engine.connect() as conn:
            assert "rate_counters" in inspect(conn).get_table_names()
            if conn.dialect.name == "postgresql":  # counters need no WAL
                persistence = conn.exec_driver_sql(
                    "SELECT relpersistence FROM pg_class WHERE relname = 'rate_counters'").scalar()
                assert persistence == "u"
    finally:
        engine.dispose()


def test_controls_and_simulated_revision_up_and_down_keeps_data(empty_db, tmp_path):
    """0003 on a database holding a study made before it: old stimuli become adversarial, old participants
    are not simulated; a downgrade drops exactly those columns and keeps every row."""
    from click.testing import CliRunner
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    from advlegit.study_app import MIGRATIONS_DIR, create_app
    from advlegit.study_app.cli import cli

    env = {"DATABASE_URL": empty_db, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    assert CliRunner().invoke(cli, ["db", "upgrade", "--revision", "0002"], env=env).exit_code == 0
    now = "2026-11-22 02:00:00+00:00"
    engine = create_engine(empty_db)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO stimulus_sets (id, manifest_sha256, name, config_hash, manifest_json, "
                              "imported_at) VALUES (1, 'a', 'set', 'c', '{}', :t)"), {"t": now})
            for n, kind in enumerate(("source", "stimulus")):
                conn.execute(text("INSERT INTO images (id, stimulus_set_id, key, kind, sha256, png, source_key, "
                                  "true_label) VALUES (:id, 1, :key, :kind, 's', :png, 'src', 3)"),
                             {"id": n + 1, "key": f"k{n}", "kind": kind, "png": b"\x89PNG"})
            conn.execute(text("INSERT INTO studies (id, name, stimulus_set_id, task_type, design_json, status, seed, "
                              "completion_code, created_at) VALUES ('s1', 'S', 1, 'identify', '{}', 'open', 1, "
                              "'C', :t)"), {"t": now})
            conn.execute(text("INSERT INTO participants (id, study_id, access_token, platform, platform_json, state, "
                              "review, next_trial_index, n_trials, created_at, last_seen_at) VALUES ('p1', 's1', "
                              "'tok', 'prolific', '{}', 'in_task', '', 0, 0, :t, :t)"), {"t": now})
        assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
        with engine.connect() as conn:
            kinds = dict(conn.execute(text("SELECT kind, stimulus_kind FROM images")).all())
            assert kinds == {"source": None, "stimulus": "adversarial"}
            assert conn.execute(text("SELECT simulated FROM participants")).scalar() in (False, 0)
        app = create_app({"DATABASE_URL": empty_db, "INSTANCE_PATH": str(tmp_path / "inst")})
        with app.app_context():
            downgrade(directory=MIGRATIONS_DIR, revision="0002")
        with engine.connect() as conn:
            insp = inspect(conn)
            assert "simulated" not in {c["name"] for c in insp.get_columns("participants")}
            assert not {"stimulus_kind", "twin_key"} & {c["name"] for c in insp.get_columns("images")}
            assert conn.execute(text("SELECT count(*) FROM images")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM participants")).scalar() == 1
        with app.app_context():
            upgrade(directory=MIGRATIONS_DIR)
            from advlegit.study_app.db import db

            db.engine.dispose()
        with engine.connect() as conn:
            assert (
                conn.execute(text("SELECT stimulus_kind FROM images WHERE kind = 'stimulus'")).scalar() == "adversarial"
            )
    finally:
        engine.dispose()


def test_review_history_revision_backfills_marks_and_makes_them_coherent(empty_db, tmp_path):
    """0004 on a database from before review history: every existing mark gets a history row, and an
    excluded participant the old pages left marked 'approved' is marked 'excluded' (what every count and
    the analysis already honoured), with a row saying so. Nothing else changes."""
    from click.testing import CliRunner
    from sqlalchemy import text

    from advlegit.study_app.cli import cli

    env = {"DATABASE_URL": empty_db, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    assert CliRunner().invoke(cli, ["db", "upgrade", "--revision", "0003"], env=env).exit_code == 0
    now = "2026-12-01 02:00:00+00:00"
    engine = create_engine(empty_db)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO stimulus_sets (id, manifest_sha256, name, config_hash, manifest_json, "
                              "imported_at) VALUES (1, 'a', 'set', 'c', '{}', :t)"), {"t": now})
            conn.execute(text("INSERT INTO studies (id, name, stimulus_set_id, task_type, design_json, status, seed, "
                              "completion_code, created_at) VALUES ('s1', 'S', 1, 'identify', '{}', 'open', 1, "
                              "'C', :t)"), {"t": now})
            for pid, state, review in (("p1", "in_task", ""), ("p2", "code_issued", "approved"),
                                       ("p3", "excluded", "approved"), ("p4", "excluded", "excluded")):
                conn.execute(text("INSERT INTO participants (id, study_id, access_token, platform, platform_json, "
                                  "state, review, next_trial_index, n_trials, created_at, last_seen_at) VALUES "
                                  "(:id, 's1', :tok, 'prolific', '{}', :state, :review, 0, 0, :t, :t)"),
                             {"id": pid, "tok": f"tok-{pid}", "state": state, "review": review, "t": now})
        assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
        with engine.connect() as conn:
            marks = dict(conn.execute(text("SELECT id, state || '/' || review FROM participants")).all())
            assert marks == {"p1": "in_task/", "p2": "code_issued/approved", "p3": "excluded/excluded",
                             "p4": "excluded/excluded"}
            events = conn.execute(text("SELECT participant_id, previous, mark FROM review_events "
                                       "ORDER BY participant_id, id")).all()
            assert [tuple(e) for e in events] == [("p2", "", "approved"), ("p3", "", "approved"),
                                                  ("p3", "approved", "excluded"), ("p4", "", "excluded")]
    finally:
        engine.dispose()


def _expected_fill_rows(app, study_id: str) -> dict:
    """What the app itself would seed now: one row per pool item, counted by the reference rescan."""
    from advlegit.study_app.allocation import fill_counts, pool_of
    from advlegit.study_app.db import db
    from advlegit.study_app.design import Design
    from advlegit.study_app.fills import cell_name, item_rank
    from advlegit.study_app.models import Study

    with app.app_context():
        study = db.session.get(Study, study_id)
        counts = fill_counts(study, Design.from_dict(study.design))
        rows = {it.key: (cell_name(it.cell), it.source, item_rank(study.seed, it.key), counts.get(it.key, 0))
                for it in pool_of(study).items.values()}
        db.session.commit()
    return rows


def test_fill_counts_revision_seeds_running_studies_as_the_app_rescans(empty_db, tmp_path, stimulus_dir_v2):
    """0007 on a database from 0006 with running studies (single images with controls, and pairs):
    its own frozen backfill gives exactly the rows the app's rescan gives — finished, in task, gone
    quiet, withdrawn, rejected and excluded participants alike; a study nobody started gets none."""
    from datetime import timedelta

    from click.testing import CliRunner
    from flask_migrate import downgrade
    from sqlalchemy import select, text
    from study_fixtures import answer_body, create_study, form, make_app, post_answer, start_participant, valid_answers

    from advlegit.study_app import MIGRATIONS_DIR, review
    from advlegit.study_app.cli import cli
    from advlegit.study_app.db import db, utcnow
    from advlegit.study_app.models import Participant

    env = {"DATABASE_URL": empty_db, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    app = make_app(empty_db, tmp_path / "app")
    client = app.test_client()
    stimuli = {"identify": '\n[stimuli]\nkinds = ["adversarial", "control_flip"]\ninclude_failed = false\n',
               "compare": '\n[stimuli]\nkinds = ["adversarial", "control_noise"]\n'}
    studies = {task: create_study(app, stimulus_dir_v2, tmp_path, task, trials=8 if task == "identify" else 12,
                                  practice=1, checks=1, extra=stimuli[task])
               for task in ("identify", "compare")}
    idle = create_study(app, stimulus_dir_v2, tmp_path, "identify", trials=8, practice=1, checks=1,
                        extra=stimuli["identify"])
    for task, study_id in studies.items():
        tokens = [start_participant(client, study_id, f"{task}{k}") for k in range(6)]
        answer = valid_answers(task)[0]
        with app.app_context():
            n = db.session.scalar(select(Participant.n_trials).where(Participant.access_token == tokens[0]))
        for token in tokens[:3]:  # finished
            for idx in range(n):
                assert post_answer(client, token, answer_body(idx, answer)).status_code in (200, 201)
        client.post(f"/p/{tokens[3]}/withdraw", data=form(tokens[3]))
        with app.app_context():
            by_token = {p.access_token: p for p in db.session.scalars(select(Participant))}
            review.set_mark(by_token[tokens[1]], "rejected", "researcher")
            review.set_mark(by_token[tokens[2]], "excluded", "researcher")
            by_token[tokens[4]].last_seen_at = utcnow() - timedelta(hours=3)  # quiet past the time-out
            db.session.commit()
    expected = {s: _expected_fill_rows(app, s) for s in studies.values()}
    assert all(any(row[3] for row in rows.values()) for rows in expected.values())
    with app.app_context():
        db.session.remove()
        downgrade(directory=MIGRATIONS_DIR, revision="0006")  # the schema and data as 0006 left them
        db.engine.dispose()
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    engine = create_engine(empty_db)
    try:
        with engine.connect() as conn:
            got: dict = {}
            for sid, key, cell, source, rank, n in conn.execute(text(
                    "SELECT study_id, item_key, cell, source, rank, n FROM fill_counts")):
                got.setdefault(sid, {})[key] = (cell, source, rank, n)
        assert got == expected and idle not in got
    finally:
        engine.dispose()
