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
    import study_app.models  # noqa: F401  (registers the tables)
    from study_app.db import db

    from click.testing import CliRunner

    from study_app.cli import cli

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

    from study_app.cli import cli

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
