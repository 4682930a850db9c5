"""advlegit study app: participants rate stimuli in the browser, every judgment kept.

`create_app(settings, **overrides)` is the Flask application factory (see docs/study-app.md); its
settings come from the environment through study_app/settings.py.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from advlegit.resources import resource_dir

from .db import db
from .settings import AppSettings, check_secret_key

MIGRATIONS_DIR = str(resource_dir("migrations"))

# Overrides that change settings (and so what is derived from them) rather than one Flask config key.
_SETTING_OVERRIDES = {"INSTANCE_PATH": "instance_path", "DATABASE_URL": "database_url", "PRODUCTION": "production"}

# Fixed for every deployment; `overrides` may still change them (tests do).
_FIXED_CONFIG = {
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "MAX_FORM_MEMORY_SIZE": 64 * 1024,
    "MAX_FORM_PARTS": 100,
    "SEND_FILE_MAX_AGE_DEFAULT": 365 * 24 * 3600,  # static files are linked with ?v=<content hash> (assets.py)
}


class StudyFlask(Flask):
    def dispatch_request(self):
        """Run the view; if it met a database connection that had died (PostgreSQL restarted since the
        connection was pooled), roll back and run it once more on a fresh one. Safe because nothing was
        committed, and every view that writes is idempotent under a repeat (answers by their UUID,
        steps by the participant's state, arrivals by the platform id)."""
        from sqlalchemy.exc import OperationalError

        try:
            return super().dispatch_request()
        except OperationalError as exc:
            if not exc.connection_invalidated:
                raise
            db.session.rollback()
            self.logger.warning("database connection was dropped; retrying the request on a new one")
            return super().dispatch_request()


def create_app(settings: AppSettings | Mapping[str, Any] | None = None, **overrides: Any) -> Flask:
    """The app. `settings` defaults to AppSettings.from_env(os.environ) (docs/config-reference.md);
    `overrides` are Flask config keys set last (tests), plus INSTANCE_PATH, DATABASE_URL and PRODUCTION,
    which replace those settings. A mapping in place of `settings` is taken as overrides (the older call
    `create_app({"DATABASE_URL": ...})`). With production on, a missing or weak secret key is refused."""
    if settings is not None and not isinstance(settings, AppSettings):
        settings, overrides = None, {**settings, **overrides}
    settings = _with_setting_overrides(settings or AppSettings.from_env(os.environ), overrides)
    app = StudyFlask(__name__, instance_path=settings.instance_path or None, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    init_config(app, settings, overrides)
    init_secret_key(app)
    init_proxy(app)
    init_db(app)
    from . import assets, errors, health, i18n, security

    init_blueprints(app)
    security.init_app(app)
    i18n.init_app(app)  # Flask-Babel
    assets.init_app(app)
    init_template_globals(app)
    errors.init_app(app)
    health.init_app(app)
    return app


def _with_setting_overrides(settings: AppSettings, overrides: dict[str, Any]) -> AppSettings:
    """Take INSTANCE_PATH, DATABASE_URL and PRODUCTION out of `overrides` into the settings (None = keep)."""
    changed = {field: overrides.pop(key) for key, field in _SETTING_OVERRIDES.items() if key in overrides}
    changed = {k: (bool(v) if k == "production" else v) for k, v in changed.items() if v is not None}
    return dataclasses.replace(settings, **changed)


def init_config(app: Flask, settings: AppSettings, overrides: Mapping[str, Any]) -> None:
    app.config.update(_FIXED_CONFIG)
    app.config.update(settings.flask_config(app.instance_path))
    app.config.update(overrides)
    app.permanent_session_lifetime = app.config["ADMIN_SESSION_SECONDS"]
    app.url_map.merge_slashes = False  # "/p//consent" is not a page: 404, not a redirect to a guess


def init_secret_key(app: Flask) -> None:
    """Production refuses a missing or weak key; elsewhere a missing one is made once and kept in the
    instance folder, so admin sessions and participants' CSRF tokens survive a restart."""
    if app.config.get("PRODUCTION"):
        check_secret_key(app.config["SECRET_KEY"])
    if not app.config["SECRET_KEY"]:
        path = Path(app.instance_path) / "secret_key"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        app.config["SECRET_KEY"] = path.read_text().strip()


def init_proxy(app: Flask) -> None:
    """Trust X-Forwarded-* from exactly PROXY_HOPS reverse proxies (docs/deployment.md)."""
    hops = app.config["PROXY_HOPS"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)


def init_db(app: Flask) -> None:
    from flask_migrate import Migrate

    from .db import configure_engine

    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            configure_engine(engine)
    Migrate(app, db, directory=MIGRATIONS_DIR)


def init_blueprints(app: Flask) -> None:
    from .admin.views import bp as admin_bp
    from .api.views import bp as api_bp
    from .participant.views import bp as participant_bp

    app.register_blueprint(participant_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(admin_bp)


def init_template_globals(app: Flask) -> None:
    from flask_babel import get_locale

    from . import i18n
    from .security import participant_csrf
    from .tasks import task_of

    app.jinja_env.globals.update(participant_csrf=participant_csrf, task_plugin=task_of, js_catalogue=i18n.js_catalogue,
                                 page_language=lambda: str(get_locale() or i18n.DEFAULT_LANGUAGE))
