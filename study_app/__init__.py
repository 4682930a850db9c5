"""advlegit study app: participants rate stimuli in the browser, every judgment kept.

`create_app(config)` is the Flask application factory (see docs/study-app.md).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from .db import db

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


def database_url(instance_path: str, explicit: str | None = None) -> str:
    url = explicit or os.environ.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'advlegit.db'}"
    # Hosted PostgreSQL hands out postgres:// URLs; SQLAlchemy needs the psycopg (v3) driver named.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix):]
    return url


def _secret_key(instance_path: str) -> str:
    if os.environ.get("ADVLEGIT_SECRET_KEY"):
        return os.environ["ADVLEGIT_SECRET_KEY"]
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    config = dict(config or {})
    app = Flask(__name__, instance_path=config.pop("INSTANCE_PATH", None) or os.environ.get("ADVLEGIT_INSTANCE")
                or None, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    url = database_url(app.instance_path, config.pop("DATABASE_URL", None))
    engine_options: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_options["connect_args"] = {"timeout": 30, "check_same_thread": False}
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options,
        SECRET_KEY=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=64 * 1024,
        ADMIN_PASSWORD_HASH=os.environ.get("ADVLEGIT_ADMIN_PASSWORD_HASH"),
        MTURK_SUBMIT_HOSTS=("www.mturk.com", "workersandbox.mturk.com"),
    )
    app.config.update(config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _secret_key(app.instance_path)

    db.init_app(app)
    from .db import configure_engine

    with app.app_context():
        for engine in db.engines.values():
            configure_engine(engine)
    from flask_migrate import Migrate

    Migrate(app, db, directory=MIGRATIONS_DIR)

    from .admin.views import bp as admin_bp
    from .api.views import bp as api_bp
    from .participant.views import bp as participant_bp

    app.register_blueprint(participant_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(admin_bp)

    from flask import jsonify, render_template, request
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # The API always answers JSON; people get a readable page. Neither shows a traceback.
        if request.path.startswith("/api/"):
            return jsonify({"error": (exc.name or "error").lower().replace(" ", "_"),
                            "message": exc.description}), exc.code
        return render_template("participant/message.html", title=exc.name, text=exc.description), exc.code

    @app.after_request
    def _headers(resp):
        # Participants' pages must never be cached by a shared proxy; nothing is framed but MTurk's.
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        return resp

    return app
