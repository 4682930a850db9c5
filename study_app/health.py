"""Health routes for load balancers and the load test: /healthz (alive) and /readyz (database reachable)."""
from __future__ import annotations

from flask import Flask

from .db import db

_PLAIN = {"Content-Type": "text/plain", "Cache-Control": "no-store"}


def healthz():
    # Liveness: answers without touching the database (the load test's trivial endpoint).
    return "ok\n", 200, _PLAIN


def readyz():
    # Readiness: one round trip to the database.
    db.session.execute(db.text("SELECT 1"))
    db.session.commit()
    return "ok\n", 200, _PLAIN


def init_app(app: Flask) -> None:
    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])
