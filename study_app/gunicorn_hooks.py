"""gunicorn server hooks: `advlegit serve --production` sets them, and a plain gunicorn command line
gets them with `--config python:advlegit.study_app.gunicorn_hooks` (docs/deployment.md)."""
from __future__ import annotations

import time


def post_worker_init(worker) -> None:
    """Runs in each worker after it loaded the app, before it accepts a request: the worker builds its
    open studies' pools and class names (warm.py), telling the master it is alive between studies."""
    from .warm import warm_open_studies

    t0 = time.perf_counter()
    warmed = warm_open_studies(worker.wsgi, notify=worker.notify)
    worker.log.info("worker %s warm in %.1f s, open studies: %d", worker.pid, time.perf_counter() - t0, len(warmed))
