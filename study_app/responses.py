"""Validate and store one response: idempotent by client UUID, one row per (participant, trial index)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .db import db, utcnow
from .models import Participant, Response, Trial
from .states import transition
from .tasks import TASKS

# fullmatch, not `$`: "$" also matches before a final newline, so "<uuid>\n" (37 characters) would pass.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VALID = {name: t.responses for name, t in TASKS.items()}  # the answers each task accepts


class ResponseError(Exception):
    """A rejected response: HTTP status, machine code, human message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Stored:
    duplicate: bool
    trial_index: int
    next_index: int
    state: str


def _int(body: dict, key: str, lo: int, hi: int, required: bool = False) -> int | None:
    v = body.get(key)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ResponseError(400, "invalid_field", f"'{key}' must be an integer from {lo} to {hi}")
    return v


def _num(body: dict, key: str, lo: float, hi: float, required: bool = False) -> float | None:
    v = body.get(key)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ResponseError(400, "invalid_field", f"'{key}' must be a number from {lo} to {hi}")
    return float(v)


def _time(body: dict, key: str) -> datetime:
    v = body.get(key)
    try:
        if not isinstance(v, str) or len(v) > 40:
            raise ValueError
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
        if t.tzinfo is None:
            raise ValueError
        # Times near year 1 or 9999 cannot move to UTC (OverflowError), and none is a real answer time.
        t = t.astimezone(timezone.utc)
        if not 2000 <= t.year <= 9000:
            raise ValueError
    except (ValueError, OverflowError):
        raise ResponseError(400, "invalid_field", f"'{key}' must be an ISO-8601 time with a zone") from None
    return t


def parse(body: Any, task: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ResponseError(400, "invalid_json", "the request body must be a JSON object")
    uuid = body.get("uuid")
    if not isinstance(uuid, str) or not _UUID.fullmatch(uuid):
        raise ResponseError(400, "invalid_field", "'uuid' must be a lowercase UUID")
    answer = body.get("response")
    if not isinstance(answer, str) or answer not in VALID[task]:
        raise ResponseError(400, "invalid_response", f"'response' must be one of {sorted(VALID[task])}")
    return {
        "uuid": uuid,
        "trial_index": _int(body, "trial_index", 0, 10_000, required=True),
        "response": answer,
        "rt_ms": _num(body, "rt_ms", 0, 86_400_000, required=True),
        "shown_at": _time(body, "shown_at"),
        "answered_at": _time(body, "answered_at"),
        "screen_width": _int(body, "screen_width", 0, 100_000),
        "screen_height": _int(body, "screen_height", 0, 100_000),
        "viewport_width": _int(body, "viewport_width", 0, 100_000),
        "viewport_height": _int(body, "viewport_height", 0, 100_000),
        "device_pixel_ratio": _num(body, "device_pixel_ratio", 0, 100),
    }


def _existing(p: Participant, r: dict[str, Any]) -> Stored | None:
    prior = db.session.scalar(select(Response).where(Response.uuid == r["uuid"]))
    if prior is None:
        return None
    if prior.participant_id != p.id or prior.trial_index != r["trial_index"] or prior.response != r["response"]:
        raise ResponseError(409, "uuid_conflict", "this response id was already used for a different answer")
    return Stored(True, prior.trial_index, p.next_trial_index, p.state)


def store(p: Participant, body: Any, task: str | None = None) -> Stored:
    """Validate and store one answer in one transaction (the caller's session), or raise ResponseError.

    The usual case (the next trial, in task) costs one SELECT for the trial, one INSERT and one UPDATE;
    only a retry or an out-of-step request looks the UUID up first."""
    r = parse(body, task or p.study.task_type)
    idx = r["trial_index"]
    if p.state != "in_task" or idx != p.next_trial_index:
        dup = _existing(p, r)
        if dup:
            return dup
        if p.state != "in_task":
            raise ResponseError(409, "not_in_task", f"responses are not accepted in state '{p.state}'")
        if idx >= p.n_trials:
            raise ResponseError(404, "no_such_trial", f"there is no trial {idx}")
        if idx < p.next_trial_index:
            raise ResponseError(409, "already_answered", f"trial {idx} already has a stored answer")
        raise ResponseError(409, "out_of_order", f"trial {p.next_trial_index} must be answered first")
    trial_id = db.session.scalar(select(Trial.id).where(Trial.participant_id == p.id, Trial.index == idx))
    if trial_id is None:
        raise ResponseError(404, "no_such_trial", f"there is no trial {idx}")
    now = utcnow()
    db.session.add(Response(participant_id=p.id, trial_id=trial_id, received_at=now, **r))
    p.next_trial_index = idx + 1
    p.last_seen_at = now
    if p.next_trial_index >= p.n_trials:
        db.session.flush()
        n = db.session.scalar(select(db.func.count()).select_from(Response).where(Response.participant_id == p.id))
        if n == p.n_trials:
            transition(p, "data_complete", f"{n} responses stored")
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent copy of this request (or another answer to this trial) won the race, or the
        # UUID is already someone else's.
        db.session.rollback()
        db.session.refresh(p)
        dup = _existing(p, r)
        if dup:
            return dup
        raise ResponseError(409, "already_answered", f"trial {idx} already has a stored answer") from None
    return Stored(False, idx, p.next_trial_index, p.state)


def count_stored(p: Participant) -> int:
    return db.session.scalar(select(db.func.count()).select_from(Response).where(Response.participant_id == p.id))
