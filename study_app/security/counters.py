"""Counter storage: rows of `rate_counters` in the shared database, so every gunicorn worker and every
app server behind a proxy counts together (docs/deployment.md); nothing is kept in process memory."""
from __future__ import annotations

from flask import current_app

from ..db import db

_UPSERTS: dict[int, object] = {}


def _upsert_statement(n: int):
    """INSERT .. ON CONFLICT DO UPDATE .. RETURNING for n keys: plain SQL that PostgreSQL and SQLite
    (3.35+) both take, built once per n (the hot path pays no statement construction)."""
    if n not in _UPSERTS:
        from sqlalchemy import bindparam, text

        from ..db import UTCDateTime

        values = ", ".join(f"(:k{i}, 1, :e{i})" for i in range(n))
        _UPSERTS[n] = text(
            f"INSERT INTO rate_counters (key, count, expires_at) VALUES {values} "
            "ON CONFLICT (key) DO UPDATE SET count = rate_counters.count + 1 RETURNING key, count"
        ).bindparams(*[bindparam(f"e{i}", type_=UTCDateTime()) for i in range(n)])
    return _UPSERTS[n]


def counter_cte(n: int) -> str:
    """SQL for `c(key, count)`: the n counters of to_count() incremented (a CTE for PostgreSQL)."""
    values = ", ".join(f"(:k{i}, 1, :e{i})" for i in range(n))
    return (f"c AS (INSERT INTO rate_counters (key, count, expires_at) VALUES {values} "
            "ON CONFLICT (key) DO UPDATE SET count = rate_counters.count + 1 RETURNING key, count)")


def counter_engine():
    """PostgreSQL: a small engine of its own in autocommit mode, for the counters (and the answer fast
    path, api/views.py). Each statement is its own transaction, so a counter row (one client address =
    one hot row) is locked only while its statement runs; the table is UNLOGGED, so counter commits
    write no WAL and wait for no fsync. Its pool is sized like the app's (AppSettings.engine_options).
    No pre-ping: a statement that meets a dropped connection is retried (see _with_retry, and the
    answer endpoint's own retries).
    SQLite: the app's engine (one short IMMEDIATE transaction per use)."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        return engine
    ext = current_app.extensions.setdefault("advlegit_counters", {})
    if engine.url not in ext:
        from sqlalchemy import create_engine

        options = {k: v for k, v in current_app.config["SQLALCHEMY_ENGINE_OPTIONS"].items() if k != "pool_pre_ping"}
        ext[engine.url] = create_engine(engine.url, isolation_level="AUTOCOMMIT", **options)
    return ext[engine.url]


def _counter_transaction():
    _release_sqlite_lock()
    engine = counter_engine()
    conn = engine.connect()
    if engine.dialect.name != "postgresql":
        conn.begin()
    return conn


def _with_retry(fn):
    from sqlalchemy.exc import OperationalError

    try:
        return fn()
    except OperationalError as exc:
        if not exc.connection_invalidated:
            raise
        return fn()  # the pool dropped every stale connection: this one is new


def _release_sqlite_lock() -> None:
    # SQLite has one writer: a transaction the request's session holds open (it begins IMMEDIATE)
    # would make the counter's own connection wait for itself. Counters are only touched before or
    # after the request's writes, so ending the session's transaction here loses nothing.
    if db.engine.dialect.name == "sqlite":
        db.session.commit()
