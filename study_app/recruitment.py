"""Recruitment platforms: who arrived (from the entry URL) and how they finish."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

PROLIFIC_COMPLETE = "https://app.prolific.co/submissions/complete"
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
MTURK_SUBMIT_HOSTS = ("www.mturk.com", "workersandbox.mturk.com")
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


class RecruitmentError(ValueError):
    pass


@dataclass
class Arrival:
    platform: str  # prolific | mturk | anonymous
    platform_pid: str | None = None
    info: dict[str, str] = field(default_factory=dict)
    preview: bool = False


def _check_id(name: str, value: str) -> str:
    if not _ID.match(value):
        raise RecruitmentError(f"{name} is malformed")
    return value


def parse_arrival(args: dict[str, str], submit_hosts: tuple[str, ...] = MTURK_SUBMIT_HOSTS) -> Arrival:
    if "PROLIFIC_PID" in args:
        info = {k: _check_id(k, args[k]) for k in ("STUDY_ID", "SESSION_ID") if args.get(k)}
        return Arrival("prolific", _check_id("PROLIFIC_PID", args["PROLIFIC_PID"]), info)
    if "assignmentId" in args:
        if args["assignmentId"] == MTURK_PREVIEW:
            return Arrival("mturk", None, {}, preview=True)
        for key in ("workerId", "hitId", "turkSubmitTo"):
            if not args.get(key):
                raise RecruitmentError(f"{key} is missing from the MTurk link")
        submit = args["turkSubmitTo"].rstrip("/")
        parts = urlsplit(submit)
        if parts.scheme != "https" or parts.hostname not in submit_hosts:
            raise RecruitmentError("turkSubmitTo is not an MTurk address")
        info = {
            "assignmentId": _check_id("assignmentId", args["assignmentId"]),
            "hitId": _check_id("hitId", args["hitId"]),
            "turkSubmitTo": submit,
        }
        return Arrival("mturk", _check_id("workerId", args["workerId"]), info)
    return Arrival("anonymous")


def prolific_redirect(code: str) -> str:
    return f"{PROLIFIC_COMPLETE}?{urlencode({'cc': code})}"


def mturk_submit_url(info: dict[str, str]) -> str:
    return f"{info['turkSubmitTo']}/mturk/externalSubmit"
