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
from .presentation import CONFIDENCE_LEVELS, TIMEOUT_RESPONSE, Presentation
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


def _bool(body: dict, key: str) -> bool | None:
    v = body.get(key)
    if v is not None and not isinstance(v, bool):
        raise ResponseError(400, "invalid_field", f"'{key}' must be true or false")
    return v


def _absent(body: dict, key: str, why: str) -> None:
    if body.get(key) is not None:
        raise ResponseError(400, "invalid_field", f"'{key}' must be left out: {why}")


def _presentation(body: dict, p: Presentation, answer: str, rt_ms: float) -> dict[str, Any]:
    """What the runner measured, checked against the study's [presentation] (docs/export.md)."""
    out: dict[str, Any] = {"refresh_hz": _num(body, "refresh_hz", 1, 1000, required=p.timed),
                           "focus_lost": _bool(body, "focus_lost")}
    if p.timed:
        requested = _int(body, "exposure_ms_requested", 0, 10**6, required=True)
        if requested != p.exposure_ms:
            raise ResponseError(400, "invalid_field", f"'exposure_ms_requested' is {requested} but this study "
                                f"shows images for {p.exposure_ms} ms; reload the page")
        out |= {"exposure_ms_requested": requested,
                "exposure_ms_measured": _num(body, "exposure_ms_measured", 0, 86_400_000, required=True),
                "dropped_frames": _int(body, "dropped_frames", 0, 10**7, required=True)}
    else:
        for key in ("exposure_ms_requested", "exposure_ms_measured", "dropped_frames"):
            _absent(body, key, "this study shows images until they are answered")
    if p.timed and p.mask != "none":
        out["mask_ms_measured"] = _num(body, "mask_ms_measured", 0, 86_400_000)
    else:
        _absent(body, "mask_ms_measured", "this study has no mask")
    timed_out = answer == TIMEOUT_RESPONSE
    if p.response_window_ms:
        # A late answer (one that raced the window) counts as timed out too: the server's rule, not the page's.
        out["response_timed_out"] = timed_out or rt_ms > p.response_window_ms
    if p.confidence and not timed_out:
        out["confidence"] = _int(body, "confidence", CONFIDENCE_LEVELS[0], CONFIDENCE_LEVELS[-1], required=True)
    else:
        _absent(body, "confidence", "no confidence rating is asked here")
    if p.fullscreen:  # None: the browser has no full-screen mode (an iPhone), so nothing could be counted
        out["fullscreen_exits"] = _int(body, "fullscreen_exits", 0, 10_000)
    else:
        _absent(body, "fullscreen_exits", "this study does not run in full screen")
    return out


def parse(body: Any, task: str, presentation: Presentation | None = None) -> dict[str, Any]:
    """The stored fields of one answer; `presentation` is the study's (None: the defaults, untimed)."""
    p = presentation or Presentation()
    if not isinstance(body, dict):
        raise ResponseError(400, "invalid_json", "the request body must be a JSON object")
    uuid = body.get("uuid")
    if not isinstance(uuid, str) or not _UUID.fullmatch(uuid):
        raise ResponseError(400, "invalid_field", "'uuid' must be a lowercase UUID")
    answer = body.get("response")
    valid = VALID[task] | ({TIMEOUT_RESPONSE} if p.response_window_ms else set())
    if not isinstance(answer, str) or answer not in valid:
        raise ResponseError(400, "invalid_response", f"'response' must be one of {sorted(valid)}")
    rt_ms = _num(body, "rt_ms", 0, 86_400_000, required=True)
    return {
        "uuid": uuid,
        "trial_index": _int(body, "trial_index", 0, 10_000, required=True),
        "response": answer,
        "rt_ms": rt_ms,
        "shown_at": _time(body, "shown_at"),
        "answered_at": _time(body, "answered_at"),
        "screen_width": _int(body, "screen_width", 0, 100_000),
        "screen_height": _int(body, "screen_height", 0, 100_000),
        "viewport_width": _int(body, "viewport_width", 0, 100_000),
        "viewport_height": _int(body, "viewport_height", 0, 100_000),
        "device_pixel_ratio": _num(body, "device_pixel_ratio", 0, 100),
        **RESPONSE_DEFAULTS, **_presentation(body, p, answer, rt_ms),
    }


# Every presentation column, so a parsed answer always binds the same parameters (api/views.py inserts it).
RESPONSE_DEFAULTS: dict[str, Any] = dict.fromkeys(
    ("refresh_hz", "exposure_ms_requested", "exposure_ms_measured", "mask_ms_measured", "dropped_frames",
     "response_timed_out", "confidence", "focus_lost", "fullscreen_exits"))


def _existing(p: Participant, r: dict[str, Any]) -> Stored | None:
    prior = db.session.scalar(select(Response).where(Response.uuid == r["uuid"]))
    if prior is None:
        return None
    if prior.participant_id != p.id or prior.trial_index != r["trial_index"] or prior.response != r["response"]:
        raise ResponseError(409, "uuid_conflict", "this response id was already used for a different answer")
    return Stored(True, prior.trial_index, p.next_trial_index, p.state)


def presentation_of(study) -> Presentation:
    return Presentation.from_dict(study.design.get("presentation"))


def store(p: Participant, body: Any, task: str | None = None, presentation: Presentation | None = None) -> Stored:
    """Validate and store one answer in one transaction (the caller's session), or raise ResponseError.

    The usual case (the next trial, in task) costs one SELECT for the trial, one INSERT and one UPDATE;
    only a retry or an out-of-step request looks the UUID up first."""
    r = parse(body, task or p.study.task_type, presentation or presentation_of(p.study))
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
