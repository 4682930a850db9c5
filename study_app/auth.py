"""Admin login: password hashes from the database (create-admin) or ADVLEGIT_ADMIN_PASSWORD_HASH.

The admin session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure + __Host- in production).
It is rebuilt from nothing at login (no pre-login value survives: no session fixation), expires after
ADMIN_SESSION_SECONDS, ends when the user's password is reset, and every admin form carries a
per-session CSRF token.
"""
from __future__ import annotations

import functools
import hmac
import secrets
import time

from flask import abort, current_app, redirect, request, session, url_for
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from .db import db
from .models import AdminUser

_DUMMY_HASH: list[str] = []


def check_login(username: str, password: str) -> bool:
    user = db.session.scalar(select(AdminUser).where(AdminUser.username == username))
    if user is not None:
        return check_password_hash(user.password_hash, password)
    env_hash = current_app.config.get("ADMIN_PASSWORD_HASH")
    if env_hash and username == "admin":
        return check_password_hash(env_hash, password)
    # Same work for an unknown user, so timing does not tell which usernames exist.
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_hex(8)))
    check_password_hash(_DUMMY_HASH[0], password)
    return False


def _password_hash(username: str) -> str | None:
    user = db.session.scalar(select(AdminUser.password_hash).where(AdminUser.username == username))
    if user is not None:
        return user
    env_hash = current_app.config.get("ADMIN_PASSWORD_HASH")
    return env_hash if env_hash and username == "admin" else None


def _auth_tag(password_hash: str) -> str:
    # Ties the session to the current password: resetting it (create-admin) ends every session.
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"admin-session\0" + password_hash.encode(), "sha256").hexdigest()[:32]


def start_admin_session(username: str) -> None:
    session.clear()
    session.permanent = True
    session["admin"] = username
    session["login_at"] = int(time.time())
    session["auth"] = _auth_tag(_password_hash(username) or "")
    session["csrf"] = secrets.token_urlsafe(24)


def is_admin() -> bool:
    username = session.get("admin")
    if not username:
        return False
    age = time.time() - float(session.get("login_at", 0))
    if not 0 <= age < current_app.config["ADMIN_SESSION_SECONDS"]:
        return False
    current = _password_hash(username)
    return current is not None and hmac.compare_digest(session.get("auth", ""), _auth_tag(current))


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not is_admin():
            session.pop("admin", None)
            if request.method != "GET":
                abort(403, description="Log in first.")
            return redirect(url_for("admin.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get("csrf") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf", "")
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(403, description="The form expired or did not come from this site; reload the page and try again.")
