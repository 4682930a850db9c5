"""The study app's settings: every environment variable the app reads, parsed and checked in one place.

`AppSettings.from_env(os.environ)` is the only reader of the app's environment (create_app, `serve` and
the commands call it). A value it cannot use stops startup with one error that names the variable and
what it allows. docs/config-reference.md ("Study app environment") is generated from this class: each
field's comment is its documentation.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(RuntimeError):
    """The environment does not describe a usable (in production: a safe) configuration."""


# Placeholder or sample secrets that production refuses (besides any key shorter than 32 characters).
WEAK_SECRETS = {"", "dev", "development", "secret", "changeme", "change-me", "test", "test-secret",
                "default", "please-change-me", "your-secret-key", "secret-key", "xxx"}


def check_secret_key(key: str | None) -> None:
    if not key or key.strip().lower() in WEAK_SECRETS or len(key) < 32:
        raise ConfigError("production needs ADVLEGIT_SECRET_KEY: a random value of at least 32 characters, "
                          "e.g. python -c 'import secrets; print(secrets.token_hex(32))'")


# ---------------------------------------------------------------- parsers (raise ValueError when refused)

def _text(raw: str) -> str:
    return raw


def _flag(raw: str) -> bool:
    if raw.strip() not in ("0", "1"):
        raise ValueError
    return raw.strip() == "1"


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not re.fullmatch(r"\d+", raw.strip()) or int(raw) < minimum:
            raise ValueError
        return int(raw)

    return parse


def _database_url(raw: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(raw)
    except (ArgumentError, ValueError):
        raise ValueError from None
    return raw


def setting(env: str, default: Any, parse: Callable[[str], Any], allowed: str, *, secret: bool = False,
            default_text: str | None = None) -> Any:
    """A field read from the environment variable `env`; unset or empty means `default`. `allowed` says
    what `parse` takes (the error and the docs show it); a secret's value is never shown."""
    return field(default=default, repr=not secret,
                 metadata={"env": env, "parse": parse, "allowed": allowed, "secret": secret,
                           "default_text": default_text})


_COUNT = "a whole number (0 = no limit)"


@dataclass(frozen=True)
class AppSettings:
    # SQLAlchemy URL; `postgres://…` and `postgresql://…` get the psycopg 3 driver. Use PostgreSQL for a live study.
    database_url: str | None = setting("DATABASE_URL", None, _database_url, "a database URL",
                                       secret=True, default_text="SQLite `advlegit.db` in the instance folder")
    # Signs the admin session cookie and derives participants' CSRF tokens; the same on every app server.
    # Required in production (at least 32 characters, not a placeholder; startup refuses otherwise).
    secret_key: str | None = setting("ADVLEGIT_SECRET_KEY", None, _text, "any text", secret=True,
                                     default_text="random, kept in `instance/secret_key`")
    # 1 = production mode (`serve --production` sets it): refuses a weak secret, `Secure` + `__Host-` cookies,
    # HSTS on https, trusts ADVLEGIT_PROXY_HOPS proxies.
    production: bool = setting("ADVLEGIT_PRODUCTION", False, _flag, "0 or 1")
    # 1 = production mode without the cookies' `Secure` flag, for a plain-http trial on localhost (the admin
    # login cannot work over http otherwise). Never on a public server.
    insecure_cookies: bool = setting("ADVLEGIT_INSECURE_COOKIES", False, _flag, "0 or 1")
    # How many reverse proxies to trust for X-Forwarded-For/-Proto/-Host/-Port (docs/deployment.md).
    proxy_hops: int | None = setting("ADVLEGIT_PROXY_HOPS", None, _whole(0), "a whole number",
                                     default_text="1 in production, else 0")
    # The instance folder (SQLite database, generated secret key).
    instance_path: str | None = setting("ADVLEGIT_INSTANCE", None, _text, "a folder",
                                        default_text="`instance/` next to the package")
    # The password `advlegit create-admin` saves (else it asks). Stored only as a hash.
    admin_password: str | None = setting("ADVLEGIT_ADMIN_PASSWORD", None, _text, "any text", secret=True)
    # Instead of create-admin: a werkzeug password hash for the site admin `admin`.
    admin_password_hash: str | None = setting("ADVLEGIT_ADMIN_PASSWORD_HASH", None, _text, "a werkzeug hash",
                                               secret=True)
    # An admin login expires after this many seconds.
    admin_session_seconds: int = setting("ADVLEGIT_ADMIN_SESSION_SECONDS", 8 * 3600, _whole(60),
                                         "a whole number of at least 60")
    # 0 turns every rate limit and the login lockout off (for tests of other things only).
    rate_limits: bool = setting("ADVLEGIT_RATE_LIMITS", True, _flag, "0 or 1")
    # Arrivals through `/s/<study>` per minute from one client address.
    rate_entry_per_ip: int = setting("ADVLEGIT_RATE_ENTRY_PER_IP", 1200, _whole(0), _COUNT)
    # Answer POSTs per minute from one client address (a flood guard: about twice what a 2-core server stores).
    rate_answers_per_ip: int = setting("ADVLEGIT_RATE_ANSWERS_PER_IP", 60_000, _whole(0), _COUNT)
    # Answer POSTs per minute for one participant link (people answer about one a second; a queue flushed
    # after a lost connection stays far below).
    rate_answers_per_participant: int = setting("ADVLEGIT_RATE_ANSWERS_PER_PARTICIPANT", 300, _whole(0), _COUNT)
    # Failed admin logins per username and client address, per lockout window.
    login_max_failures: int = setting("ADVLEGIT_LOGIN_MAX_FAILURES", 5, _whole(0), _COUNT)
    # Failed admin logins per client address (any usernames), per lockout window.
    login_max_failures_per_ip: int = setting("ADVLEGIT_LOGIN_MAX_FAILURES_PER_IP", 30, _whole(0), _COUNT)
    # The lockout window, in seconds.
    login_lockout_seconds: int = setting("ADVLEGIT_LOGIN_LOCKOUT_SECONDS", 900, _whole(1),
                                         "a whole number of at least 1")
    # Connections per pool, per worker process (two pools per worker; PostgreSQL only).
    db_pool_size: int | None = setting("ADVLEGIT_DB_POOL_SIZE", None, _whole(1), "a whole number of at least 1",
                                       default_text="10; `serve --production`: its threads per worker")
    # Extra connections a pool may open beyond its size under a burst.
    db_max_overflow: int = setting("ADVLEGIT_DB_MAX_OVERFLOW", 2, _whole(0), "a whole number")
    # 1 = test every pooled connection before use (a round trip per request). Off: a request that meets a
    # dropped connection is run once more on a new one.
    db_pre_ping: bool = setting("ADVLEGIT_DB_PRE_PING", False, _flag, "0 or 1")
    # gunicorn worker processes for `serve --production` without --workers.
    web_concurrency: int = setting("WEB_CONCURRENCY", 4, _whole(1), "a whole number of at least 1")
    # Threads per worker for `serve --production` without --threads.
    threads: int = setting("ADVLEGIT_THREADS", 4, _whole(1), "a whole number of at least 1")
    # The token `advlegit bots` sends to be stored as simulated, when it does not know the server's secret
    # (`advlegit study bot-token ID` prints it); same as --simulated-token.
    simulated_token: str | None = setting("ADVLEGIT_SIMULATED_TOKEN", None, _text, "any text", secret=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AppSettings:
        """The settings in `environ` (e.g. os.environ); unset or empty variables take their defaults.
        Raises ConfigError naming every variable whose value is refused and what it allows."""
        values: dict[str, Any] = {}
        problems = []
        for f in dataclasses.fields(cls):
            meta = f.metadata
            raw = environ.get(meta["env"], "")
            if raw == "":
                continue
            try:
                values[f.name] = meta["parse"](raw)
            except ValueError:
                shown = "(hidden)" if meta["secret"] else repr(raw)
                problems.append(f"{meta['env']}={shown}: expected {meta['allowed']}")
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(**values)

    @classmethod
    def variables(cls) -> dict[str, dataclasses.Field]:
        """{environment variable: its field}, in the order of the class."""
        return {f.metadata["env"]: f for f in dataclasses.fields(cls)}

    # ------------------------------------------------------------ what the app makes of them

    @property
    def effective_proxy_hops(self) -> int:
        return self.proxy_hops if self.proxy_hops is not None else (1 if self.production else 0)

    @property
    def secure_cookies(self) -> bool:
        return self.production and not self.insecure_cookies

    def sqlalchemy_url(self, instance_path: str) -> str:
        url = self.database_url or f"sqlite:///{Path(instance_path) / 'advlegit.db'}"
        # Hosted PostgreSQL hands out postgres:// URLs; SQLAlchemy needs the psycopg (v3) driver named.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                url = "postgresql+psycopg://" + url[len(prefix):]
        return url

    def engine_options(self, url: str) -> dict[str, Any]:
        """SQLAlchemy engine options for `url`. A connection the database dropped (restart, failover) is
        found when a request uses it, and that request is run once more on a fresh connection
        (StudyFlask.dispatch_request); pre-pinging every checkout instead costs a round trip per request."""
        options: dict[str, Any] = {"pool_pre_ping": self.db_pre_ping}
        if url.startswith("sqlite"):
            options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            options.update(pool_size=self.db_pool_size or 10, max_overflow=self.db_max_overflow, pool_timeout=15,
                           pool_recycle=1800, connect_args={"connect_timeout": 5})
        return options

    def flask_config(self, instance_path: str) -> dict[str, Any]:
        """The Flask config keys these settings decide (create_app's explicit overrides come after)."""
        url = self.sqlalchemy_url(instance_path)
        out = {
            "SQLALCHEMY_DATABASE_URI": url,
            "SQLALCHEMY_ENGINE_OPTIONS": self.engine_options(url),
            "SECRET_KEY": self.secret_key,
            "PRODUCTION": self.production,
            "ADMIN_PASSWORD_HASH": self.admin_password_hash,
            "ADMIN_SESSION_SECONDS": self.admin_session_seconds,
            "RATE_LIMITS_ENABLED": self.rate_limits,
            "RATE_ENTRY_PER_IP": self.rate_entry_per_ip,
            "RATE_ANSWERS_PER_IP": self.rate_answers_per_ip,
            "RATE_ANSWERS_PER_PARTICIPANT": self.rate_answers_per_participant,
            "LOGIN_MAX_FAILURES": self.login_max_failures,
            "LOGIN_MAX_FAILURES_PER_IP": self.login_max_failures_per_ip,
            "LOGIN_LOCKOUT_SECONDS": self.login_lockout_seconds,
            "PROXY_HOPS": self.effective_proxy_hops,
            "SESSION_COOKIE_SECURE": self.secure_cookies,
        }
        if self.secure_cookies:
            out["SESSION_COOKIE_NAME"] = "__Host-advlegit"  # only ever sent over https, to this host, whole site
        return out
