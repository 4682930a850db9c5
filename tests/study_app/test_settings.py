"""AppSettings.from_env on its own, with plain dicts: defaults, each variable parsed, each bad value refused
with its name; and that no other module of the app reads the environment."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from advlegit.study_app.settings import AppSettings, ConfigError, check_secret_key

ROOT = Path(__file__).resolve().parents[2]

# One good value per variable (as the environment spells it) and what the field holds after parsing.
GOOD = {
    "DATABASE_URL": ("postgres://u:p@db:5432/x", "postgres://u:p@db:5432/x"),
    "ADVLEGIT_SECRET_KEY": ("9c1f" * 16, "9c1f" * 16),
    "ADVLEGIT_PRODUCTION": ("1", True),
    "ADVLEGIT_INSECURE_COOKIES": ("1", True),
    "ADVLEGIT_PROXY_HOPS": ("2", 2),
    "ADVLEGIT_INSTANCE": ("/srv/advlegit/instance", "/srv/advlegit/instance"),
    "ADVLEGIT_ADMIN_PASSWORD": ("a long password", "a long password"),
    "ADVLEGIT_ADMIN_PASSWORD_HASH": ("scrypt:32768:8:1$salt$hash", "scrypt:32768:8:1$salt$hash"),
    "ADVLEGIT_ADMIN_SESSION_SECONDS": ("3600", 3600),
    "ADVLEGIT_RATE_LIMITS": ("0", False),
    "ADVLEGIT_RATE_ENTRY_PER_IP": ("10", 10),
    "ADVLEGIT_RATE_ANSWERS_PER_IP": ("0", 0),
    "ADVLEGIT_RATE_ANSWERS_PER_PARTICIPANT": ("7", 7),
    "ADVLEGIT_LOGIN_MAX_FAILURES": ("3", 3),
    "ADVLEGIT_LOGIN_MAX_FAILURES_PER_IP": ("9", 9),
    "ADVLEGIT_LOGIN_LOCKOUT_SECONDS": ("60", 60),
    "ADVLEGIT_DB_POOL_SIZE": ("6", 6),
    "ADVLEGIT_DB_MAX_OVERFLOW": ("0", 0),
    "ADVLEGIT_DB_PRE_PING": ("1", True),
    "WEB_CONCURRENCY": ("3", 3),
    "ADVLEGIT_THREADS": ("8", 8),
    "ADVLEGIT_SIMULATED_TOKEN": ("tok", "tok"),
}

# Values each variable refuses (text variables take any text, so they have none here).
BAD = {
    "DATABASE_URL": ["not a url"],
    "ADVLEGIT_PRODUCTION": ["yes", "true", "2"],
    "ADVLEGIT_INSECURE_COOKIES": ["on"],
    "ADVLEGIT_PROXY_HOPS": ["-1", "one", "1.5"],
    "ADVLEGIT_ADMIN_SESSION_SECONDS": ["59", "8h"],
    "ADVLEGIT_RATE_LIMITS": ["off", "false"],
    "ADVLEGIT_RATE_ENTRY_PER_IP": ["-5", "1e3"],
    "ADVLEGIT_RATE_ANSWERS_PER_IP": ["lots"],
    "ADVLEGIT_RATE_ANSWERS_PER_PARTICIPANT": ["3.0"],
    "ADVLEGIT_LOGIN_MAX_FAILURES": ["five"],
    "ADVLEGIT_LOGIN_MAX_FAILURES_PER_IP": ["-30"],
    "ADVLEGIT_LOGIN_LOCKOUT_SECONDS": ["0"],
    "ADVLEGIT_DB_POOL_SIZE": ["0", "ten"],
    "ADVLEGIT_DB_MAX_OVERFLOW": ["-2"],
    "ADVLEGIT_DB_PRE_PING": ["2"],
    "WEB_CONCURRENCY": ["0", "four"],
    "ADVLEGIT_THREADS": ["0"],
}
SECRETS = {"DATABASE_URL", "ADVLEGIT_SECRET_KEY", "ADVLEGIT_ADMIN_PASSWORD", "ADVLEGIT_ADMIN_PASSWORD_HASH",
           "ADVLEGIT_SIMULATED_TOKEN"}


def test_the_tables_cover_every_variable():
    assert set(GOOD) == set(AppSettings.variables())
    assert {name for name, f in AppSettings.variables().items() if f.metadata["secret"]} == SECRETS


def test_defaults():
    s = AppSettings.from_env({})
    assert s == AppSettings()
    assert (s.database_url, s.secret_key, s.production, s.insecure_cookies, s.instance_path) == (None,) * 2 + (
        False, False, None)
    assert (s.rate_limits, s.rate_entry_per_ip, s.rate_answers_per_ip, s.rate_answers_per_participant) == (
        True, 1200, 60_000, 300)
    assert (s.login_max_failures, s.login_max_failures_per_ip, s.login_lockout_seconds) == (5, 30, 900)
    assert (s.admin_session_seconds, s.db_max_overflow, s.db_pre_ping, s.web_concurrency, s.threads) == (
        28800, 2, False, 4, 4)
    assert s.effective_proxy_hops == 0 and dataclasses.replace(s, production=True).effective_proxy_hops == 1
    assert s.engine_options("postgresql+psycopg://h/x")["pool_size"] == 10
    # Empty counts as unset (compose files write VAR= for "not set").
    assert AppSettings.from_env({name: "" for name in GOOD}) == AppSettings()


@pytest.mark.parametrize("name", sorted(GOOD))
def test_each_variable_is_parsed(name):
    raw, expected = GOOD[name]
    settings = AppSettings.from_env({name: raw})
    assert getattr(settings, AppSettings.variables()[name].name) == expected
    others = {f.name for f in dataclasses.fields(AppSettings)} - {AppSettings.variables()[name].name}
    assert all(getattr(settings, o) == getattr(AppSettings(), o) for o in others)


@pytest.mark.parametrize("name,raw", [(name, raw) for name, values in sorted(BAD.items()) for raw in values])
def test_each_bad_value_is_refused_with_the_variables_name(name, raw):
    with pytest.raises(ConfigError) as err:
        AppSettings.from_env({"ADVLEGIT_RATE_LIMITS": "1", name: raw})
    message = str(err.value)
    assert message.startswith(f"{name}=") and "expected " + AppSettings.variables()[name].metadata["allowed"] in message
    if name in SECRETS:
        assert raw not in message  # a database URL may hold a password
    else:
        assert repr(raw) in message


def test_every_bad_value_is_named_in_one_error():
    with pytest.raises(ConfigError) as err:
        AppSettings.from_env({"ADVLEGIT_PRODUCTION": "yes", "ADVLEGIT_THREADS": "0", "ADVLEGIT_RATE_LIMITS": "1"})
    assert "ADVLEGIT_PRODUCTION='yes'" in str(err.value) and "ADVLEGIT_THREADS='0'" in str(err.value)
    assert "ADVLEGIT_RATE_LIMITS" not in str(err.value)


def test_secrets_are_not_shown_in_the_settings_repr():
    text = repr(AppSettings.from_env({name: raw for name, (raw, _) in GOOD.items()}))
    assert "9c1f9c1f" not in text and "a long password" not in text and "u:p@db" not in text


def test_what_the_app_makes_of_them(tmp_path):
    s = AppSettings.from_env({"DATABASE_URL": "postgres://u:p@db:5432/x", "ADVLEGIT_PRODUCTION": "1",
                              "ADVLEGIT_DB_POOL_SIZE": "3", "ADVLEGIT_DB_MAX_OVERFLOW": "1"})
    config = s.flask_config(str(tmp_path))
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db:5432/x"
    assert config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_size"] == 3
    assert config["SQLALCHEMY_ENGINE_OPTIONS"]["max_overflow"] == 1
    assert config["SESSION_COOKIE_SECURE"] and config["SESSION_COOKIE_NAME"] == "__Host-advlegit"
    assert config["PROXY_HOPS"] == 1
    plain = dataclasses.replace(s, insecure_cookies=True).flask_config(str(tmp_path))
    assert not plain["SESSION_COOKIE_SECURE"] and "SESSION_COOKIE_NAME" not in plain
    local = AppSettings().flask_config(str(tmp_path))
    assert local["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'advlegit.db'}"
    assert "pool_size" not in local["SQLALCHEMY_ENGINE_OPTIONS"]


def test_production_secret_check():
    for weak in (None, "", "changeme", "test-secret", "short-but-random-3f9a"):
        with pytest.raises(ConfigError, match="ADVLEGIT_SECRET_KEY"):
            check_secret_key(weak)
    check_secret_key("9c1f" * 16)


def test_a_bad_value_stops_the_app_and_the_commands(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from advlegit.study_app import create_app
    from advlegit.study_app.cli import cli

    monkeypatch.setenv("ADVLEGIT_RATE_ENTRY_PER_IP", "many")
    with pytest.raises(ConfigError, match="ADVLEGIT_RATE_ENTRY_PER_IP='many'"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "INSTANCE_PATH": str(tmp_path / "i")})
    res = CliRunner().invoke(cli, ["study", "list"], env={"ADVLEGIT_INSTANCE": str(tmp_path / "i")})
    assert res.exit_code == 1 and "ADVLEGIT_RATE_ENTRY_PER_IP='many': expected a whole number" in res.output
    assert not (tmp_path / "x.db").exists()


def test_create_app_takes_settings_and_overrides(tmp_path):
    from advlegit.study_app import create_app

    s = AppSettings(database_url=f"sqlite:///{tmp_path / 'a.db'}", instance_path=str(tmp_path / "i"),
                    rate_entry_per_ip=7, admin_session_seconds=120)
    app = create_app(s, TESTING=True, RATE_ANSWERS_PER_IP=3)
    assert app.config["RATE_ENTRY_PER_IP"] == 7 and app.config["RATE_ANSWERS_PER_IP"] == 3 and app.testing
    assert app.permanent_session_lifetime.total_seconds() == 120
    assert app.instance_path == str(tmp_path / "i")
    # The older call: one dict of overrides, settings from the environment.
    legacy = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}", "INSTANCE_PATH": str(tmp_path / "j"),
                         "RATE_ENTRY_PER_IP": 9})
    assert legacy.config["SQLALCHEMY_DATABASE_URI"].endswith("b.db") and legacy.config["RATE_ENTRY_PER_IP"] == 9
    # PRODUCTION as an override is a setting: the secure cookie and proxy hop follow from it.
    prod = create_app(s, PRODUCTION=True, SECRET_KEY="9c1f" * 16)
    assert prod.config["SESSION_COOKIE_SECURE"] and prod.config["PROXY_HOPS"] == 1
    with pytest.raises(ConfigError, match="ADVLEGIT_SECRET_KEY"):
        create_app(s, PRODUCTION=True, SECRET_KEY="changeme")


def test_no_other_module_reads_the_apps_environment():
    """Only settings.py knows the variables; create_app, wsgi and the commands hand it os.environ."""
    names = set(AppSettings.variables())
    readers = []
    for path in sorted((ROOT / "study_app").rglob("*.py")):
        text = path.read_text()
        if path.name == "settings.py":
            continue
        for m in re.finditer(r"environ(?:\.get)?\s*[\[(]\s*[\"'](\w+)|getenv\(\s*[\"'](\w+)|envvar=[\"'](\w+)", text):
            name = next(g for g in m.groups() if g)
            if name in names or name.startswith("ADVLEGIT_"):
                readers.append(f"{path.relative_to(ROOT)}: {name}")
        if re.search(r"os\.environ\[[^]]+\]\s*=|os\.environ\.setdefault|putenv", text):
            readers.append(f"{path.relative_to(ROOT)} writes the environment")
    assert readers == []
