"""Error responses: JSON for the API and JSON clients, a readable page in the page's language for
people; neither shows a traceback. Also refuses NUL bytes before any view sees them."""
from __future__ import annotations

from flask import Flask, abort, current_app, jsonify, render_template, request
from flask_babel import gettext
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException

from .db import db
from .security import RateLimited


def wants_json() -> bool:
    """API paths always answer JSON; other paths do when the client sent or asked for JSON."""
    if request.path.startswith("/api/") or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_title(code: int) -> str:
    """The title of an error page, in the page's language (JSON clients get the English name as code)."""
    titles = {400: gettext("Bad request"), 403: gettext("Not allowed"), 404: gettext("Page not found"),
              405: gettext("Not allowed"), 409: gettext("Conflict"), 410: gettext("No longer available"),
              413: gettext("Too much data"), 429: gettext("Too many requests"),
              503: gettext("Briefly unavailable")}
    return titles.get(code, gettext("Something went wrong"))


def error_response(code: int, name: str, text: str, headers=None):
    if wants_json():
        resp = jsonify({"error": name.lower().replace(" ", "_"), "message": text})
    else:
        resp = current_app.make_response(render_template("participant/message.html", title=error_title(code),
                                                         text=text))
    resp.status_code = code
    for k, v in (headers or []):
        if k.lower() != "content-type":
            resp.headers[k] = v
    return resp


def _http_error(exc: HTTPException):
    text = exc.description or ""
    if exc.code == 429 and text == RateLimited.description:
        text = gettext("Too many requests; please wait a moment and try again.")
    return error_response(exc.code or 500, exc.name or "error", text, exc.get_headers())


def _db_unavailable(exc: OperationalError):
    # The database is restarting or unreachable: nothing was stored; the client may retry as is.
    db.session.rollback()
    current_app.logger.warning("database unavailable: %s", str(exc).splitlines()[0])
    return error_response(503, "Service Unavailable", gettext("The server is briefly unavailable; please try again."),
                          [("Retry-After", "2")])


def _bad_data(exc: DataError):
    # A value the database cannot take (a NUL byte, an over-long field) that got past validation.
    db.session.rollback()
    return error_response(400, "Bad Request",
                          gettext("The request contains a value that cannot be stored or looked up."))


def _refuse_nul():
    # PostgreSQL text cannot hold NUL bytes and no legitimate URL, link id or form field has one.
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        abort(400, description=gettext("The address contains an invalid character."))
    if request.method == "POST" and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if any("\x00" in k or "\x00" in v for k, v in request.form.items(multi=True)):
            abort(400, description=gettext("The form contains an invalid character."))


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _db_unavailable)
    app.register_error_handler(DataError, _bad_data)
    app.before_request(_refuse_nul)
