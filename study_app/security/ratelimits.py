"""Rate limits and the admin login lockout: fixed windows counted in `rate_counters` (counters.py)."""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app, request
from sqlalchemy import delete
from werkzeug.exceptions import HTTPException

from .counters import _counter_transaction, _upsert_statement, _with_retry
from .sweeping import sweep_sometimes


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
        params[f"e{i}"] = datetime.fromtimestamp((int(now // lim.window) + 1) * lim.window + 5, UTC)
    return active, now, params


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
            sweep_sometimes(conn, now)
            if conn.in_transaction():
                conn.commit()
            return counts

    enforce(active, now, _with_retry(run))


def forget(*limits: Limit) -> None:
    from ..models import RateCounter

    now = time.time()

    def run():
        with _counter_transaction() as conn:
            conn.execute(delete(RateCounter).where(RateCounter.key.in_([lim.key(now) for lim in limits])))
            if conn.in_transaction():
                conn.commit()

    _with_retry(run)


def give_back(*limits: Limit) -> None:
    """Undo one count of each limit in the current window."""
    from sqlalchemy import update

    from ..models import RateCounter

    now = time.time()

    def run():
        with _counter_transaction() as conn:
            conn.execute(update(RateCounter).where(RateCounter.key.in_([lim.key(now) for lim in limits]),
                                                   RateCounter.count > 0).values(count=RateCounter.count - 1))
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
