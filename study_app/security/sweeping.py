"""Sweeping: expired counter rows are deleted now and then by whichever request draws the lot."""
from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from sqlalchemy import delete

SWEEP_CHANCE = 0.002  # per counted request: about one sweep a second at 500 answers a second


def _sweep(conn, now: float) -> None:
    from ..models import RateCounter

    conn.execute(delete(RateCounter).where(RateCounter.expires_at < datetime.fromtimestamp(now, UTC)))


def sweep_sometimes(conn, now: float | None = None) -> None:
    if random.random() < SWEEP_CHANCE:
        _sweep(conn, time.time() if now is None else now)
