"""Participants' CSRF tokens: an HMAC of their link token, so any worker or server can check them."""
from __future__ import annotations

import base64
import hashlib
import hmac

from flask import abort, current_app, request

CSRF_HEADER = "X-CSRF-Token"


def participant_csrf(access_token: str) -> str:
    """A participant's CSRF token: an HMAC of their secret link token under the app's SECRET_KEY.

    Participant pages carry their session in the URL (no cookies, so MTurk's iframe works); this token
    proves a POST came from a page this server rendered. Stateless, so every worker and server agrees.
    """
    return participant_csrf_for(current_app.config["SECRET_KEY"], access_token)


def participant_csrf_for(secret_key: str, access_token: str) -> str:
    mac = hmac.new(secret_key.encode(), b"participant-csrf\0" + access_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def check_participant_csrf(access_token: str) -> None:
    sent = request.form.get("csrf") or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(sent.encode(), participant_csrf(access_token).encode()):
        from flask_babel import gettext

        abort(403, description=gettext("This request did not come from a page of this study (missing or wrong "
                                       "CSRF token); reload the page and try again."))
