"""Fixtures for the study app: every test gets a clean schema, on SQLite and on PostgreSQL."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The suite runs with --import-mode=importlib, which puts no test folder on sys.path; our helpers
# module has a name no package uses, so adding this folder is safe.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from study_fixtures import (
    ServerProcess,
    create_study,
    fresh_postgres_database,
    make_app,
    shared_stimulus_set,
    shared_stimulus_set_v2,
)


@pytest.fixture(scope="session")
def stimulus_dir(tmp_path_factory) -> Path:
    return shared_stimulus_set(tmp_path_factory)


@pytest.fixture(scope="session")
def stimulus_dir_v2(tmp_path_factory) -> Path:
    """Format 2, fixed_budget, with flip and noise controls."""
    return shared_stimulus_set_v2(tmp_path_factory)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
        return
    admin_url = request.getfixturevalue("postgres_url")
    with fresh_postgres_database(admin_url) as url:
        yield url


@pytest.fixture(scope="module")
def _schema(db_url):
    """Create the tables once per module database; each test then starts from empty tables."""
    from advlegit.study_app.db import db

    created = []

    def reset(app):
        with app.app_context():
            if not created:
                db.drop_all()
                db.create_all()
                created.append(True)
                return
            tables = [t.name for t in reversed(db.metadata.sorted_tables)]
            with db.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
                else:
                    for t in tables:
                        conn.exec_driver_sql(f"DELETE FROM {t}")

    return reset


@pytest.fixture()
def app(db_url, _schema, tmp_path):
    from advlegit.study_app.db import db

    app = make_app(db_url, tmp_path / "instance")
    _schema(app)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    for engine in app.extensions.get("advlegit_counters", {}).values():
        engine.dispose()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def study_id(app, stimulus_dir, tmp_path) -> str:
    return create_study(app, stimulus_dir, tmp_path, "identify")


@pytest.fixture()
def server_process(app, db_url, tmp_path):
    with ServerProcess(db_url, tmp_path / "server-instance") as srv:
        yield srv
