"""Values a worker process builds once and keeps: a study's pool, a stimulus set's class names.

Both come from rows that never change once a study runs (a set is fixed at import, a design once the
study has its first participant), and both are costly to build (every image row of the set; a manifest
of tens of MB), so a worker builds each once, not per request. Concurrent requests for a key that is
being built wait for that one build instead of repeating it: a Prolific launch sends a worker's every
thread to the same study in its first second. `advlegit serve --production` builds them before a worker
takes its first request (warm.py).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class OncePerProcess(Generic[V]):
    """A least-recently-used map of at most `keep` values, each built by one thread."""

    def __init__(self, keep: int):
        self.keep = keep
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one thread builds; the others of this process wait for its value
            with self._lock:
                if key in self._values:
                    return self._values[key]
            value = build()  # an exception reaches this caller; the next one tries again
            with self._lock:
                self._values[key] = value
                self._building.pop(key, None)
                while len(self._values) > self.keep:
                    self._values.popitem(last=False)
            return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
