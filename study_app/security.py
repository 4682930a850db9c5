"""Security: response headers and the Content-Security-Policy, CSRF tokens, rate limits and the admin
login lockout.

Nothing here keeps state in process memory: rate-limit and lockout counters are rows of
`rate_counters` in the shared database, so any number of gunicorn workers and app servers behind a
proxy count together (docs/deployment.md). Settings come from the environment (docs/study-app.md).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import math
import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from flask import Flask, abort, current_app, request
from sqlalchemy import delete, select
from werkzeug.exceptions import HTTPException

from .db import db

# Placeholder or sample secrets that production refuses (besides any key shorter than 32 characters).
WEAK_SECRETS = {"", "dev", "development", "secret", "changeme", "change-me", "test", "test-secret",
                "default", "please-change-me", "your-secret-key", "secret-key", "xxx"}
CSRF_HEADER = "X-CSRF-Token"


class ConfigError(RuntimeError):
    """The environment does not describe a safe production configuration."""


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r}: must not be negative")
    return value


def check_secret_key(key: str | None) -> None:
    if not key or key.strip().lower() in WEAK_SECRETS or len(key) < 32:
        raise ConfigError("production needs ADVLEGIT_SECRET_KEY: a random value of at least 32 characters, "
                          "e.g. python -c 'import secrets; print(secrets.token_hex(32))'")


# ---------------------------------------------------------------- headers

@functools.lru_cache(maxsize=8)
def content_security_policy(frame_ancestors: str, form_hosts: tuple[str, ...]) -> str:
    # Pages load only this server's own script, style and images: no inline code, no third parties.
    # MTurk's worker sites show participant pages in their iframe (frame_ancestors) and MTurk's submit
    # hosts receive the final form (form_hosts): two different lists; nothing else may do either.
    forms = " ".join(["'self'"] + [f"https://{h}" for h in form_hosts])
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            f"base-uri 'none'; form-action {forms}; frame-ancestors {frame_ancestors}")


def _set_headers(resp):
    hosts = tuple(current_app.config["MTURK_SUBMIT_HOSTS"])
    admin = request.path.startswith("/admin")
    if admin:
        frame = "'none'"
        resp.headers["X-Frame-Options"] = "DENY"
        # Admin pages show participants and exports: never kept by the browser or a proxy.
        resp.headers["Cache-Control"] = "no-store"
    else:  # X-Frame-Options cannot name MTurk, so participant pages rely on frame-ancestors alone
        frame = " ".join(["'self'"] + [f"https://{h}" for h in current_app.config["MTURK_FRAME_HOSTS"]])
    resp.headers.setdefault("Content-Security-Policy", content_security_policy(frame, hosts))
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")  # participant URLs carry their secret token
    resp.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    resp.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    if request.is_secure and current_app.config.get("PRODUCTION"):
        resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return resp


# ---------------------------------------------------------------- CSRF

def participant_csrf(access_token: str) -> str:
    """A participant's CSRF token: an HMAC of their secret link token under the app's SECRET_KEY.

    Participant pages carry their session in the URL (no cookies, so MTurk's iframe works); this token
    proves a POST came from a page this server rendered. Stateless, so every worker and server agrees.
    """
    return participant_csrf_for(current_app.config["SECRET_KEY"], access_token)


def participant_csrf_for(secret_key: str, access_token: str) -> str:
    mac = hmac.new(secret_key.encode(), b"participant-csrf\0" + access_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def check_participant_csrf(access_token: str) -> None:
    sent = request.form.get("csrf") or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(sent.encode(), participant_csrf(access_token).encode()):
        from flask_babel import gettext

        abort(403, description=gettext("This request did not come from a page of this study (missing or wrong "
                                       "CSRF token); reload the page and try again."))


# ---------------------------------------------------------------- simulated participants

SIMULATED_HEADER = "X-Advlegit-Simulated"


def simulated_token_for(secret_key: str, study_id: str) -> str:
    """The token `advlegit bots` sends on arrival so its participants are stored as simulated.

    An HMAC of the study id under the app's SECRET_KEY: the bots command derives it from the same
    secret as the server (or is given it), nothing is stored, and it is sent as a request header, which
    no recruitment link can carry — a person cannot become "simulated" by accident. Knowing it grants
    nothing but labelling one's own answers as simulated (i.e. excluded from the real analysis).
    """
    mac = hmac.new(secret_key.encode(), b"simulated-participant\0" + study_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def arrival_is_simulated(study_id: str) -> bool:
    """True when the arrival carries the study's simulated token; a wrong token is refused (403, nothing
    stored), so bots that were given the wrong secret fail loudly instead of being recorded as people."""
    sent = request.headers.get(SIMULATED_HEADER)
    if sent is None:
        return False
    expected = simulated_token_for(current_app.config["SECRET_KEY"], study_id)
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(403, description=f"The {SIMULATED_HEADER} token is not valid for this study (the bots need the "
                               "server's ADVLEGIT_SECRET_KEY, or the token from `advlegit study bot-token`).")
    return True


# ---------------------------------------------------------------- rate limits

class RateLimited(HTTPException):
    code = 429
    description = "Too many requests; please wait a moment and try again."

    def __init__(self, retry_after: int, description: str | None = None):
        super().__init__(description=description)
        self.retry_after = max(1, retry_after)

    def get_headers(self, environ=None, scope=None):
        return [*super().get_headers(environ, scope), ("Retry-After", str(self.retry_after))]


@dataclass(frozen=True)
class Limit:
    name: str      # e.g. "entry-ip"
    ident: str     # who is counted (client address, hashed participant token, username)
    limit: int     # requests allowed per window (0 = unlimited)
    window: int    # seconds

    def key(self, now: float) -> str:
        return f"{self.name}:{self.ident}:{int(now // self.window)}"

    def resets_in(self, now: float) -> int:
        return math.ceil((int(now // self.window) + 1) * self.window - now)


def client_ip() -> str:
    # After ProxyFix (ADVLEGIT_PROXY_HOPS) this is the address the trusted proxy saw.
    return (request.remote_addr or "unknown")[:64]


def short_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:20]


_UPSERTS: dict[int, object] = {}


def _upsert_statement(n: int):
    """INSERT .. ON CONFLICT DO UPDATE .. RETURNING for n keys: plain SQL that PostgreSQL and SQLite
    (3.35+) both take, built once per n (the hot path pays no statement construction)."""
    if n not in _UPSERTS:
        from sqlalchemy import bindparam, text

        from .db import UTCDateTime

        values = ", ".join(f"(:k{i}, 1, :e{i})" for i in range(n))
        _UPSERTS[n] = text(
            f"INSERT INTO rate_counters (key, count, expires_at) VALUES {values} "
            "ON CONFLICT (key) DO UPDATE SET count = rate_counters.count + 1 RETURNING key, count"
        ).bindparams(*[bindparam(f"e{i}", type_=UTCDateTime()) for i in range(n)])
    return _UPSERTS[n]


def counter_engine():
    """PostgreSQL: a small engine of its own in autocommit mode, for the counters (and the answer fast
    path, api/views.py). Each statement is its own transaction, so a counter row (one client address =
    one hot row) is locked only while its statement runs; the table is UNLOGGED, so counter commits
    write no WAL and wait for no fsync. No pre-ping: a statement that meets a dropped connection is
    retried (see _with_retry, and the answer endpoint's own retries).
    SQLite: the app's engine (one short IMMEDIATE transaction per use)."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        return engine
    ext = current_app.extensions.setdefault("advlegit_counters", {})
    if engine.url not in ext:
        from sqlalchemy import create_engine

        size, overflow = env_int("ADVLEGIT_DB_POOL_SIZE", 10), env_int("ADVLEGIT_DB_MAX_OVERFLOW", 2)
        ext[engine.url] = create_engine(engine.url, isolation_level="AUTOCOMMIT", pool_size=size, max_overflow=overflow,
                                        pool_timeout=15, pool_recycle=1800, connect_args={"connect_timeout": 5})
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


def _sweep(conn, now: float) -> None:
    from .models import RateCounter

    conn.execute(delete(RateCounter).where(RateCounter.expires_at < datetime.fromtimestamp(now, timezone.utc)))


def to_count(*limits: Limit) -> tuple[list[Limit], float, dict]:
    """The limits that are on, the time, and bind parameters k0, e0, k1, e1 .. (key, expiry) for
    counting them, keys sorted so concurrent requests always lock counter rows in the same order."""
    if not current_app.config.get("RATE_LIMITS_ENABLED", True):
        return [], time.time(), {}
    now = time.time()
    active = sorted((lim for lim in limits if lim.limit > 0), key=lambda lim: lim.key(now))
    params = {}
    for i, lim in enumerate(active):
        params[f"k{i}"] = lim.key(now)
        params[f"e{i}"] = datetime.fromtimestamp((int(now // lim.window) + 1) * lim.window + 5, timezone.utc)
    return active, now, params


def counter_cte(n: int) -> str:
    """SQL for `c(key, count)`: the n counters of to_count() incremented (a CTE for PostgreSQL)."""
    values = ", ".join(f"(:k{i}, 1, :e{i})" for i in range(n))
    return (f"c AS (INSERT INTO rate_counters (key, count, expires_at) VALUES {values} "
            "ON CONFLICT (key) DO UPDATE SET count = rate_counters.count + 1 RETURNING key, count)")


def enforce(active: list[Limit], now: float, counts: dict[str, int]) -> None:
    for lim in active:
        if (counts.get(lim.key(now)) or 0) > lim.limit:
            raise RateLimited(lim.resets_in(now))


def hit(*limits: Limit) -> None:
    """Count one request against each limit; raise RateLimited (429) when any is over.
    One statement for all limits (INSERT .. ON CONFLICT DO UPDATE .. RETURNING)."""
    active, now, params = to_count(*limits)
    if not active:
        return

    def run():
        with _counter_transaction() as conn:
            counts = dict(conn.execute(_upsert_statement(len(active)), params).all())
            if random.random() < 0.002:
                _sweep(conn, now)
            if conn.in_transaction():
                conn.commit()
            return counts

    enforce(active, now, _with_retry(run))


def sweep_sometimes(conn) -> None:
    if random.random() < 0.002:
        _sweep(conn, time.time())


def forget(*limits: Limit) -> None:
    from .models import RateCounter

    now = time.time()
    def run():
        with _counter_transaction() as conn:
            conn.execute(delete(RateCounter).where(RateCounter.key.in_([lim.key(now) for lim in limits])))
            if conn.in_transaction():
                conn.commit()

    _with_retry(run)


def entry_limits() -> tuple[Limit, ...]:
    c = current_app.config
    return (Limit("entry-ip", client_ip(), c["RATE_ENTRY_PER_IP"], 60),)


def answer_limits(access_token: str) -> tuple[Limit, ...]:
    c = current_app.config
    return (Limit("answer-ip", client_ip(), c["RATE_ANSWERS_PER_IP"], 60),
            Limit("answer-p", short_hash(access_token), c["RATE_ANSWERS_PER_PARTICIPANT"], 60))


def login_limits(username: str) -> tuple[Limit, Limit]:
    c = current_app.config
    window = c["LOGIN_LOCKOUT_SECONDS"]
    return (Limit("login-user-ip", short_hash(f"{username}\0{client_ip()}"), c["LOGIN_MAX_FAILURES"], window),
            Limit("login-ip", client_ip(), c["LOGIN_MAX_FAILURES_PER_IP"], window))


def count_login_attempt(username: str) -> None:
    """Count this login attempt first, then refuse it (429, no password checked) when it is past the
    limit of this user+address or this address in the current lockout window. The count is one atomic
    statement (INSERT .. ON CONFLICT .. RETURNING), so however many attempts arrive at once, at most
    the limit's number of passwords are checked (reading the count, checking, then recording let
    simultaneous attempts all pass the check)."""
    try:
        hit(*login_limits(username))
    except RateLimited as exc:
        raise RateLimited(exc.retry_after, "Too many failed logins. Try again later.") from None


def record_login_success(username: str) -> None:
    """The attempt that succeeded was counted like a failure: the user+address count starts over, and
    the address gets its attempt back (its limit counts failures, e.g. many researchers behind one NAT)."""
    if current_app.config.get("RATE_LIMITS_ENABLED", True):
        per_user, per_address = login_limits(username)
        forget(per_user)
        give_back(per_address)


def give_back(*limits: Limit) -> None:
    """Undo one count of each limit in the current window."""
    from sqlalchemy import update

    from .models import RateCounter

    now = time.time()

    def run():
        with _counter_transaction() as conn:
            conn.execute(update(RateCounter).where(RateCounter.key.in_([lim.key(now) for lim in limits]),
                                                   RateCounter.count > 0).values(count=RateCounter.count - 1))
            if conn.in_transaction():
                conn.commit()

    _with_retry(run)


# ---------------------------------------------------------------- configuration

def settings(production: bool) -> dict:
    """Security settings from the environment (create_app's explicit config overrides them)."""
    insecure = os.environ.get("ADVLEGIT_INSECURE_COOKIES") == "1"
    out = {
        "PRODUCTION": production,
        "RATE_LIMITS_ENABLED": os.environ.get("ADVLEGIT_RATE_LIMITS", "1") != "0",
        "RATE_ENTRY_PER_IP": env_int("ADVLEGIT_RATE_ENTRY_PER_IP", 1200),
        "RATE_ANSWERS_PER_IP": env_int("ADVLEGIT_RATE_ANSWERS_PER_IP", 60_000),
        "RATE_ANSWERS_PER_PARTICIPANT": env_int("ADVLEGIT_RATE_ANSWERS_PER_PARTICIPANT", 300),
        "LOGIN_MAX_FAILURES": env_int("ADVLEGIT_LOGIN_MAX_FAILURES", 5),
        "LOGIN_MAX_FAILURES_PER_IP": env_int("ADVLEGIT_LOGIN_MAX_FAILURES_PER_IP", 30),
        "LOGIN_LOCKOUT_SECONDS": max(1, env_int("ADVLEGIT_LOGIN_LOCKOUT_SECONDS", 900)),
        "ADMIN_SESSION_SECONDS": max(60, env_int("ADVLEGIT_ADMIN_SESSION_SECONDS", 8 * 3600)),
        "PROXY_HOPS": env_int("ADVLEGIT_PROXY_HOPS", 1 if production else 0),
        "SESSION_COOKIE_SECURE": production and not insecure,
    }
    if out["SESSION_COOKIE_SECURE"]:
        # __Host-: only ever sent over https, to this host, for the whole site.
        out["SESSION_COOKIE_NAME"] = "__Host-advlegit"
    return out


def init_app(app: Flask) -> None:
    app.after_request(_set_headers)
