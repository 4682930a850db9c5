"""The audit log: what researchers did, when, to which study. Written in the caller's transaction, so
an action and its record commit or roll back together."""
from __future__ import annotations

from sqlalchemy import select

from .db import db
from .models import AuditEvent

ACTIONS = ("study_created", "study_opened", "study_closed", "review_mark", "export", "erasure", "member",
           "account")


def record(actor: str, action: str, study_id: str | None, detail: str = "") -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    db.session.add(AuditEvent(actor=(actor or "unknown")[:100], action=action, study_id=study_id,
                              detail=detail[:500]))


def events(study_id: str, limit: int | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.study_id == study_id).order_by(AuditEvent.id.desc())
    return list(db.session.scalars(stmt.limit(limit) if limit else stmt))
