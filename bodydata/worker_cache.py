"""Per-process caches of expensive read-only objects (prefactored solvers, registrars, extractors), one rule for all.

A stage's item function runs many times in one worker process; what it builds from the stage's options (a template
plus a factorisation, seconds to make) is kept here by a key that names everything it was built from, so an item
never gets an object built for other options. Bounded (least recently used goes first) because each object may hold
hundreds of MB; :func:`clear_all` empties every cache (tests do, so no solver outlives the test that made it).
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any, Callable, Generic, TypeVar

__all__ = ["WorkerCache", "cache_key", "clear_all"]

T = TypeVar("T")
_ALL: list["WorkerCache"] = []


def cache_key(*parts: Any) -> str:
    """A key from JSON-able parts (paths, option dicts, sizes); non-JSON values by their ``str``."""
    return json.dumps(parts, sort_keys=True, default=str)


class WorkerCache(Generic[T]):
    """name : for messages. maxsize : objects kept. ``get(key, build)`` returns the cached object or builds it."""

    def __init__(self, name: str, maxsize: int = 4):
        self.name, self.maxsize = name, int(maxsize)
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0
        _ALL.append(self)

    def get(self, key: str, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()  # outside the lock: building takes seconds and may itself use another cache
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            self.builds += 1
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def clear_all() -> None:
    """Empty every cache of this process."""
    for cache in _ALL:
        cache.clear()
