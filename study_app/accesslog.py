"""The access log of `advlegit serve --production` without participant secrets or platform ids.

Participant links carry their secret token in the path (/p/<token>/…, /api/p/<token>/…) and recruitment
links carry Prolific/MTurk ids in the query (/s/<study>?PROLIFIC_PID=…). Whoever reads the log could
otherwise take over a session or re-identify a participant, so both are replaced before a line is
written: the path keeps its shape (which page, which status, how long) and nothing else.
"""
from __future__ import annotations

import re

from gunicorn.glogging import Logger

REDACTED = "[redacted]"
_TOKEN = re.compile(r"(/p/)[^/?#\s\"]+")
_QUERY = re.compile(r"\?[^\s\"]*")


def redact(text: str) -> str:
    """`GET /p/abc…/task?x=1 HTTP/1.1` -> `GET /p/[redacted]/task?[redacted] HTTP/1.1`."""
    return _QUERY.sub("?" + REDACTED, _TOKEN.sub(r"\1" + REDACTED, text))


class RedactingLogger(Logger):
    """gunicorn's logger with every access-log field (request line, path, query, referrer, Location,
    headers and environ values a custom format could name) passed through redact()."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if isinstance(value, str):
                atoms[key] = redact(value)
        for key in ("q", "{query_string}e"):  # the bare query, without its "?"
            if atoms.get(key):
                atoms[key] = REDACTED
        return atoms
