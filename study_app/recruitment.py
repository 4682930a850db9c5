"""Recruitment platforms: who arrived (from the entry URL) and how they finish."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

PROLIFIC_COMPLETE = "https://app.prolific.co/submissions/complete"
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
# Where the final form is POSTed (turkSubmitTo) ...
MTURK_SUBMIT_HOSTS = ("www.mturk.com", "workersandbox.mturk.com")
# ... and who shows the study in its iframe (the worker sites): two different lists.
MTURK_FRAME_HOSTS = ("worker.mturk.com", "workersandbox.mturk.com")
# fullmatch, not `$` (which also matches before a final newline: "X\n" would pass as an id).
_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


class RecruitmentError(ValueError):
    pass


@dataclass
class Arrival:
    platform: str  # prolific | mturk | anonymous
    platform_pid: str | None = None
    info: dict[str, str] = field(default_factory=dict)
    preview: bool = False


def _check_id(name: str, value: str) -> str:
    if not _ID.fullmatch(value):
        raise RecruitmentError(f"{name} is malformed")
    return value


def _participant_id(name: str, value: str) -> str:
    """A platform's participant id in the platform's own case (Prolific ids are lowercase hex, MTurk
    worker ids uppercase), so `X` and `x` are one person, not two."""
    value = _check_id(name, value)
    return value.upper() if name == "workerId" else value.lower()


def submit_base(turk_submit_to: str, submit_hosts: tuple[str, ...] = MTURK_SUBMIT_HOSTS) -> str:
    """`https://<host>` for an allowed MTurk submit host, or RecruitmentError.

    The URL the form posts to is rebuilt from the allow-list, never copied from the link: a value such
    as `https://evil.example\\@www.mturk.com` parses as www.mturk.com in Python but as evil.example in
    browsers, so anything beyond scheme and host (a backslash, user info, port, path, query) is refused."""
    value = turk_submit_to.rstrip("/")
    if "\\" in value or any(c.isspace() or ord(c) < 32 for c in value):
        raise RecruitmentError("turkSubmitTo is not an MTurk address")
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    if (parts.scheme != "https" or host not in submit_hosts or parts.netloc.lower() != host
            or parts.path or parts.query or parts.fragment):
        raise RecruitmentError("turkSubmitTo is not an MTurk address")
    return f"https://{submit_hosts[submit_hosts.index(host)]}"


def parse_arrival(args: dict[str, str], submit_hosts: tuple[str, ...] = MTURK_SUBMIT_HOSTS) -> Arrival:
    if "PROLIFIC_PID" in args:
        info = {k: _check_id(k, args[k]) for k in ("STUDY_ID", "SESSION_ID") if args.get(k)}
        return Arrival("prolific", _participant_id("PROLIFIC_PID", args["PROLIFIC_PID"]), info)
    if "assignmentId" in args:
        if args["assignmentId"] == MTURK_PREVIEW:
            return Arrival("mturk", None, {}, preview=True)
        for key in ("workerId", "hitId", "turkSubmitTo"):
            if not args.get(key):
                raise RecruitmentError(f"{key} is missing from the MTurk link")
        submit = submit_base(args["turkSubmitTo"], submit_hosts)
        info = {
            "assignmentId": _check_id("assignmentId", args["assignmentId"]),
            "hitId": _check_id("hitId", args["hitId"]),
            "turkSubmitTo": submit,
        }
        return Arrival("mturk", _participant_id("workerId", args["workerId"]), info)
    return Arrival("anonymous")


def prolific_redirect(code: str) -> str:
    return f"{PROLIFIC_COMPLETE}?{urlencode({'cc': code})}"


def mturk_submit_url(info: dict[str, str], submit_hosts: tuple[str, ...] = MTURK_SUBMIT_HOSTS) -> str:
    # Checked again here: rows stored before the allow-list was enforced this strictly get the same rule.
    return f"{submit_base(info['turkSubmitTo'], submit_hosts)}/mturk/externalSubmit"
