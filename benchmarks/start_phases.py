"""Where a Start's time goes inside a gunicorn worker (bench_start --phases). Not part of the app.

`install()` runs in the gunicorn master before it forks (bench_load.Server's preamble), so every worker
inherits it. It wraps the Start view's steps (allocation.prepare_start, begin_allocation, lock_study,
allocate) and the whole WSGI call, and appends one JSON line per request to
$ADVLEGIT_START_PHASES/<pid>.jsonl: which request (method and last path segment: "POST instructions" is
the Start), when the app got it (wall clock), how long each step took, and the app's total. The client's
latency minus the app's total is the time the request waited in gunicorn (accept queue, a free thread)
and on the wire.
"""
from __future__ import annotations

import functools
import json
import os
import threading
import time

_local = threading.local()


def _timed(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        marks = getattr(_local, "marks", None)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if marks is not None:
                marks[name] = marks.get(name, 0.0) + (time.perf_counter() - t0) * 1000
    return wrapper


def install() -> None:
    out = os.environ.get("ADVLEGIT_START_PHASES")
    if not out:
        return
    import flask

    from advlegit.study_app import allocation

    for name in ("prepare_start", "begin_allocation", "lock_study", "allocate"):
        setattr(allocation, name, _timed(name, getattr(allocation, name)))
    for name in ("pool_of", "time_out_stale"):  # inside prepare_start / allocate
        if hasattr(allocation, name):
            setattr(allocation, name, _timed(name, getattr(allocation, name)))
    call = flask.Flask.__call__

    def timed_call(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        _local.marks = {"request": f"{environ.get('REQUEST_METHOD')} {path.rsplit('/', 1)[-1] or path}"}
        wall, t0 = time.time(), time.perf_counter()
        try:
            return call(self, environ, start_response)
        finally:
            marks, _local.marks = _local.marks, None
            marks.update(total=(time.perf_counter() - t0) * 1000, at=wall, thread=threading.get_ident(),
                         active=threading.active_count())
            with open(os.path.join(out, f"{os.getpid()}.jsonl"), "a") as f:
                f.write(json.dumps(marks) + "\n")

    flask.Flask.__call__ = timed_call
