"""Validate one answer: the one check of an answer's body, whichever backend stores it (study_app/answers)."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from .db import db
from .models import Participant, Response, Study
from .presentation import CONFIDENCE_LEVELS, TIMEOUT_RESPONSE, Presentation
from .tasks import TASKS

# fullmatch, not `$`: "$" also matches before a final newline, so "<uuid>\n" (37 characters) would pass.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VALID = {name: t.responses for name, t in TASKS.items()}  # the answers each task accepts


class ResponseError(Exception):
    """A rejected response: HTTP status, machine code, human message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Stored:
    """A stored answer (or, duplicate=True, one stored before under the same UUID) and where its participant is."""

    duplicate: bool
    trial_index: int
    next_index: int
    state: str
    n_trials: int


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
        t = t.astimezone(UTC)
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


# Every presentation column, so a parsed answer always binds the same parameters.
RESPONSE_DEFAULTS: dict[str, Any] = dict.fromkeys(
    ("refresh_hz", "exposure_ms_requested", "exposure_ms_measured", "mask_ms_measured", "dropped_frames",
     "response_timed_out", "confidence", "focus_lost", "fullscreen_exits"))
# The keys of parse()'s result: the columns of a responses row that come from the answer itself.
ANSWER_FIELDS = ("uuid", "trial_index", "response", "rt_ms", "shown_at", "answered_at", "screen_width",
                 "screen_height", "viewport_width", "viewport_height", "device_pixel_ratio", *RESPONSE_DEFAULTS)


@functools.lru_cache(maxsize=256)
def _study_presentation(_database: str, study_id: str) -> Presentation:
    return Presentation.from_dict(db.session.get(Study, study_id).design.get("presentation"))


def study_presentation(study_id: str) -> Presentation:
    """A study's [presentation], cached per database: a design never changes after its study is created."""
    return _study_presentation(current_app.config["SQLALCHEMY_DATABASE_URI"], study_id)


def count_stored(p: Participant) -> int:
    return db.session.scalar(select(db.func.count()).select_from(Response).where(Response.participant_id == p.id))
