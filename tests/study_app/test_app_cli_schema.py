"""Commands on a database that `advlegit db upgrade` has not prepared, or prepared by an older version,
say so in one line instead of a traceback, and change nothing."""
from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

from advlegit.study_app.cli import cli


def _run(args, url, tmp_path):
    env = {"DATABASE_URL": url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    return CliRunner().invoke(cli, args, env=env)


def test_never_migrated_database_is_named_and_left_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    for args in (["study", "list"], ["export", "--study", "x", "-o", str(tmp_path / "x.csv")]):
        res = _run(args, url, tmp_path)
        assert res.exit_code == 1, res.output
        assert "no advlegit tables" in res.output and "advlegit db upgrade" in res.output
        assert "Traceback" not in res.output
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []  # nothing was created behind the user's back
    finally:
        engine.dispose()


def test_database_behind_the_code_names_both_revisions(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    assert _run(["db", "upgrade", "--revision", "0001"], url, tmp_path).exit_code == 0
    res = _run(["study", "list"], url, tmp_path)
    assert res.exit_code == 1
    assert "at migration 0001" in res.output and "advlegit db upgrade" in res.output
    assert _run(["db", "upgrade"], url, tmp_path).exit_code == 0
    res = _run(["study", "list"], url, tmp_path)
    assert res.exit_code == 0, res.output
    assert "no studies yet" in res.output
