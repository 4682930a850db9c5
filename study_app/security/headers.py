"""Response headers: the Content-Security-Policy, framing, caching of admin pages, HSTS in production."""
from __future__ import annotations

import functools

from flask import Flask, current_app, request

from ..recruitment import MTURK_FRAME_HOSTS, MTURK_SUBMIT_HOSTS


@functools.lru_cache(maxsize=8)
def content_security_policy(frame_ancestors: str, form_hosts: tuple[str, ...]) -> str:
    # Pages load only this server's own script, style and images: no inline code, no third parties.
    # MTurk's worker sites show participant pages in their iframe (frame_ancestors) and MTurk's submit
    # hosts receive the final form (form_hosts): two different lists; nothing else may do either.
    forms = " ".join(["'self'"] + [f"https://{h}" for h in form_hosts])
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            f"base-uri 'none'; form-action {forms}; frame-ancestors {frame_ancestors}")


def _set_headers(resp):
    if request.path.startswith("/admin"):
        frame = "'none'"
        resp.headers["X-Frame-Options"] = "DENY"
        # Admin pages show participants and exports: never kept by the browser or a proxy.
        resp.headers["Cache-Control"] = "no-store"
    else:  # X-Frame-Options cannot name MTurk, so participant pages rely on frame-ancestors alone
        frame = " ".join(["'self'"] + [f"https://{h}" for h in MTURK_FRAME_HOSTS])
    resp.headers.setdefault("Content-Security-Policy", content_security_policy(frame, MTURK_SUBMIT_HOSTS))
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")  # participant URLs carry their secret token
    resp.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    resp.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    if request.is_secure and current_app.config.get("PRODUCTION"):
        resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return resp


def init_app(app: Flask) -> None:
    app.after_request(_set_headers)
