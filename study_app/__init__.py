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


def wants_json() -> bool:
    """API paths always answer JSON; other paths do when the client sent or asked for JSON."""
    from flask import request

    if request.path.startswith("/api/") or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app. Configuration comes from the environment (docs/study-app.md); `config` overrides it
    (tests). With PRODUCTION (ADVLEGIT_PRODUCTION=1 or `advlegit serve --production`) it refuses a
    missing or weak ADVLEGIT_SECRET_KEY and sends cookies over https only."""
    from . import recruitment, security

    config = dict(config or {})
    app = StudyFlask(__name__, instance_path=config.pop("INSTANCE_PATH", None) or os.environ.get("ADVLEGIT_INSTANCE")
                or None, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    production = bool(config.pop("PRODUCTION", os.environ.get("ADVLEGIT_PRODUCTION") == "1"))
    url = database_url(app.instance_path, config.pop("DATABASE_URL", None))
    # A connection the database dropped (restart, failover) is found when a request uses it; that
    # request is then run once more on a fresh connection (StudyFlask.dispatch_request). Pre-pinging
    # every checkout instead (ADVLEGIT_DB_PRE_PING=1) costs a round trip per request.
    engine_options: dict[str, Any] = {"pool_pre_ping": os.environ.get("ADVLEGIT_DB_PRE_PING", "0") == "1"}
    if url.startswith("sqlite"):
        engine_options["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        # Per process: size the pool to the worker's threads (serve --production does).
        engine_options.update(pool_size=security.env_int("ADVLEGIT_DB_POOL_SIZE", 10),
                              max_overflow=security.env_int("ADVLEGIT_DB_MAX_OVERFLOW", 2),
                              pool_timeout=15, pool_recycle=1800, connect_args={"connect_timeout": 5})
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options,
        SECRET_KEY=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_FORM_MEMORY_SIZE=64 * 1024,
        MAX_FORM_PARTS=100,
        SEND_FILE_MAX_AGE_DEFAULT=365 * 24 * 3600,  # static files are linked with ?v=<content hash>
        ADMIN_PASSWORD_HASH=os.environ.get("ADVLEGIT_ADMIN_PASSWORD_HASH"),
        MTURK_SUBMIT_HOSTS=recruitment.MTURK_SUBMIT_HOSTS,  # where the final form may be POSTed
        MTURK_FRAME_HOSTS=recruitment.MTURK_FRAME_HOSTS,  # who may show participant pages in a frame
    )
    app.config.update(security.settings(production))
    app.config.update(config)
    if production:
        security.check_secret_key(os.environ.get("ADVLEGIT_SECRET_KEY") or app.config["SECRET_KEY"])
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _secret_key(app.instance_path)
    app.permanent_session_lifetime = app.config["ADMIN_SESSION_SECONDS"]
    if app.config["PROXY_HOPS"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    app.url_map.merge_slashes = False  # "/p//consent" is not a page: 404, not a redirect to a guess
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
    from .tasks import task_of

    app.register_blueprint(participant_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(admin_bp)
    security.init_app(app)
    from . import i18n

    i18n.init_app(app)
    from flask_babel import get_locale

    app.jinja_env.globals.update(asset=_asset_url, participant_csrf=security.participant_csrf, task_plugin=task_of,
                                 page_language=lambda: str(get_locale() or i18n.DEFAULT_LANGUAGE),
                                 js_catalogue=i18n.js_catalogue)

    from flask import jsonify, render_template
    from sqlalchemy.exc import DataError, OperationalError
    from werkzeug.exceptions import HTTPException

    def _error(code: int, name: str, text: str, headers=None):
        if wants_json():
            resp = jsonify({"error": name.lower().replace(" ", "_"), "message": text})
        else:
            resp = app.make_response(render_template("participant/message.html", title=_error_title(code), text=text))
        resp.status_code = code
        for k, v in (headers or []):
            if k.lower() != "content-type":
                resp.headers[k] = v
        return resp

    def _error_title(code: int) -> str:
        """The title of an error page, in the page's language (JSON clients get the English name as code)."""
        from flask_babel import gettext

        titles = {400: gettext("Bad request"), 403: gettext("Not allowed"), 404: gettext("Page not found"),
                  405: gettext("Not allowed"), 409: gettext("Conflict"), 410: gettext("No longer available"),
                  413: gettext("Too much data"), 429: gettext("Too many requests"),
                  503: gettext("Briefly unavailable")}
        return titles.get(code, gettext("Something went wrong"))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # JSON for the API (and JSON clients); people get a readable page. Neither shows a traceback.
        text = exc.description or ""
        if exc.code == 429 and text == security.RateLimited.description:
            from flask_babel import gettext

            text = gettext("Too many requests; please wait a moment and try again.")
        return _error(exc.code or 500, exc.name or "error", text, exc.get_headers())

    @app.errorhandler(OperationalError)
    def _db_unavailable(exc: OperationalError):
        # The database is restarting or unreachable: nothing was stored; the client may retry as is.
        db.session.rollback()
        app.logger.warning("database unavailable: %s", str(exc).splitlines()[0])
        from flask_babel import gettext

        return _error(503, "Service Unavailable", gettext("The server is briefly unavailable; please try again."),
                      [("Retry-After", "2")])

    @app.errorhandler(DataError)
    def _bad_data(exc: DataError):
        # A value the database cannot take (a NUL byte, an over-long field) that got past validation.
        db.session.rollback()
        from flask_babel import gettext

        return _error(400, "Bad Request", gettext("The request contains a value that cannot be stored or looked up."))

    @app.before_request
    def _refuse_nul():
        # PostgreSQL text cannot hold NUL bytes and no legitimate URL, link id or form field has one.
        from flask import abort, request
        from flask_babel import gettext

        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
            abort(400, description=gettext("The address contains an invalid character."))
        form_types = ("application/x-www-form-urlencoded", "multipart/form-data")
        if request.method == "POST" and request.mimetype in form_types:
            if any("\x00" in k or "\x00" in v for k, v in request.form.items(multi=True)):
                abort(400, description=gettext("The form contains an invalid character."))

    @app.get("/healthz")
    def healthz():
        # Liveness: answers without touching the database (the load test's trivial endpoint).
        return "ok\n", 200, {"Content-Type": "text/plain", "Cache-Control": "no-store"}

    @app.get("/readyz")
    def readyz():
        # Readiness: one round trip to the database.
        db.session.execute(db.text("SELECT 1"))
        db.session.commit()
        return "ok\n", 200, {"Content-Type": "text/plain", "Cache-Control": "no-store"}

    return app


_ASSET_VERSIONS: dict[str, str] = {}


def _asset_url(filename: str) -> str:
    """url_for('static') with ?v=<content hash>, so static files can be cached for a year."""
    from flask import current_app, url_for
    import hashlib

    v = _ASSET_VERSIONS.get(filename)
    if v is None:
        data = (Path(current_app.static_folder) / filename).read_bytes()
        v = _ASSET_VERSIONS[filename] = hashlib.sha256(data).hexdigest()[:12]
    return url_for("static", filename=filename, v=v)
