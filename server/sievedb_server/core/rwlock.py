"""A writer-preferring readers-writer lock: many searches at once, one index mutation at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RWLock"]


class _ReadSide:
    """`with lock.read():` — a plain context manager (a generator-based one costs more, and
    every search takes this lock).

    Uncontended, a reader takes the condition's mutex directly (the C lock, not the
    Condition's Python-level `__enter__`) and wakes nobody: only a waiting writer needs the
    last reader's notification, and writers register under the same mutex before they wait.
    """

    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lock = self._lock
        with lock._mutex:
            while lock._writer or lock._writers_waiting:
                lock._cond.wait()
            lock._readers += 1

    def __exit__(self, *exc: object) -> None:
        lock = self._lock
        with lock._mutex:
            lock._readers -= 1
            if lock._readers == 0 and lock._writers_waiting:
                lock._cond.notify_all()


class RWLock:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._read_side = _ReadSide(self)

    def read(self) -> _ReadSide:
        return self._read_side

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
