"""Build a worker's per-process caches (memo.py) before it takes its first request.

Without this, the first Starts a worker serves wait for its copy of the study's pool (every image row
of the set) and its first trial lists for the set's class names (a manifest of tens of MB): seconds
on a 20,000-stimulus set, all at the moment a recruitment launch brings its first arrivals
(BENCHMARKS.md, bench_start). `advlegit serve --production` calls `warm_open_studies` from gunicorn's
post_worker_init hook, so a worker joins the accept queue warm; the dev server and tests build lazily.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask
from sqlalchemy import select

log = logging.getLogger(__name__)


def warm_open_studies(app: Flask, notify: Callable[[], None] = lambda: None) -> list[str]:
    """The pool, class names and presentation of every open study (the newest allocation.POOLS_KEPT:
    warming more would evict the first ones again), and one pooled database connection. Returns the
    ids warmed. A study that cannot be warmed is logged and left to build on its first request: warming
    never stops a worker from serving. `notify` is called between studies (gunicorn's heartbeat: a long
    warm-up is not taken for a hung worker)."""
    from . import allocation
    from .api.views import set_classes
    from .db import db
    from .models import Study
    from .responses import study_presentation

    warmed = []
    with app.app_context():
        try:
            studies = db.session.scalars(select(Study).where(Study.status == "open")
                                         .order_by(Study.created_at.desc()).limit(allocation.POOLS_KEPT)).all()
        except Exception:  # noqa: BLE001  (a database that is down now may be up for the first request)
            log.exception("warm-up: could not list the open studies; caches will be built on first use")
            db.session.rollback()
            return warmed
        for study in studies:
            try:
                allocation.pool_of(study)
                notify()
                set_classes(study.stimulus_set_id)
                study_presentation(study.id)
                warmed.append(study.id)
            except Exception:  # noqa: BLE001
                log.exception("warm-up: study %s left to build on its first request", study.id)
                db.session.rollback()
            notify()
        db.session.remove()
    return warmed
