"""Researcher accounts: one function that creates or resets one, for the CLI and the admin page."""
from __future__ import annotations

import re

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from .db import db
from .models import AdminUser

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
MIN_PASSWORD = 8


class AccountError(ValueError):
    pass


def save_account(username: str, password: str, site_admin: bool) -> str:
    """Create the account, or reset its password and kind (which ends its open sessions); caller commits."""
    username = username.strip()
    if not USERNAME.fullmatch(username):
        raise AccountError("a username is 1-100 letters, digits or . _ @ - (starting with a letter or digit)")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password must have at least {MIN_PASSWORD} characters")
    user = db.session.scalar(select(AdminUser).where(AdminUser.username == username))
    verb = "reset"
    if user is None:
        user = AdminUser(username=username, password_hash="")
        db.session.add(user)
        verb = "created"
    user.password_hash = generate_password_hash(password)
    user.is_site_admin = site_admin
    return f"{username} {verb} ({'site admin' if site_admin else 'researcher'})"
