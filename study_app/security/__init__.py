"""Security, one module per concern: response headers (headers.py), participants' CSRF tokens (csrf.py),
simulated-participant tokens (simulated.py), rate limits and the login lockout (ratelimits.py), the
counters they are kept in (counters.py) and the sweeping of expired counters (sweeping.py).

Nothing here keeps state in process memory: rate-limit and lockout counters are rows of
`rate_counters` in the shared database, so any number of gunicorn workers and app servers behind a
proxy count together (docs/deployment.md). Settings come from study_app/settings.py.
Every name callers use is importable from `advlegit.study_app.security` itself.
"""
from __future__ import annotations

from ..settings import WEAK_SECRETS, ConfigError, check_secret_key
from .counters import _counter_transaction as _counter_transaction
from .counters import _release_sqlite_lock as _release_sqlite_lock
from .counters import _upsert_statement as _upsert_statement
from .counters import _with_retry as _with_retry
from .counters import counter_cte, counter_engine
from .csrf import CSRF_HEADER, check_participant_csrf, participant_csrf, participant_csrf_for
from .headers import content_security_policy, init_app
from .ratelimits import (
    Limit,
    RateLimited,
    answer_limits,
    client_ip,
    count_login_attempt,
    enforce,
    entry_limits,
    forget,
    give_back,
    hit,
    login_limits,
    record_login_success,
    short_hash,
    to_count,
)
from .simulated import SIMULATED_HEADER, arrival_is_simulated, simulated_token_for
from .sweeping import _sweep as _sweep
from .sweeping import sweep_sometimes

__all__ = [
    "CSRF_HEADER", "SIMULATED_HEADER", "WEAK_SECRETS", "ConfigError", "Limit", "RateLimited", "answer_limits",
    "arrival_is_simulated", "check_participant_csrf", "check_secret_key", "client_ip", "content_security_policy",
    "count_login_attempt", "counter_cte", "counter_engine", "enforce", "entry_limits", "forget", "give_back", "hit",
    "init_app", "login_limits", "participant_csrf", "participant_csrf_for", "record_login_success", "short_hash",
    "simulated_token_for", "sweep_sometimes", "to_count",
]
