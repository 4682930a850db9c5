"""Admin login: password hashes from the database (create-admin) or ADVLEGIT_ADMIN_PASSWORD_HASH."""
from __future__ import annotations

import functools
import hmac
import secrets

from flask import abort, current_app, redirect, request, session, url_for
from sqlalchemy import select
from werkzeug.security import check_password_hash

from .db import db
from .models import AdminUser


def check_login(username: str, password: str) -> bool:
    user = db.session.scalar(select(AdminUser).where(AdminUser.username == username))
    if user is not None:
        return check_password_hash(user.password_hash, password)
    env_hash = current_app.config.get("ADMIN_PASSWORD_HASH")
    if env_hash and username == "admin":
        return check_password_hash(env_hash, password)
    return False


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not session.get("admin"):
            return redirect(url_for("admin.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get("csrf", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, description="The form expired or did not come from this site; reload the page and try again.")
