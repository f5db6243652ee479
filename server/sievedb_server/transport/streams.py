"""Client streams with an idle timeout, so a stalled client cannot pin a worker thread.

In grpcio's synchronous server, `next(request_iterator)` blocks the handler's worker thread
until the client sends, half-closes, cancels, or the call's deadline passes — forever for a
client without a deadline that opens a stream and stops sending. `IdleTimeoutStream` pulls
each message on a helper thread and waits for it at most `timeout` seconds; past that the
handler raises `StreamIdle` (DEADLINE_EXCEEDED), the call ends, and gRPC wakes the helper
(its `next` returns or raises once the call is over), which then exits.

Messages are pulled one at a time, on demand: nothing is read ahead, so memory stays that of
one message, as without the wrapper.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

from sievedb_server.errors import StreamIdle

__all__ = ["IdleTimeoutStream"]

T = TypeVar("T")

_ITEM, _END, _ERROR = range(3)


class IdleTimeoutStream(Generic[T]):
    """Iterate `source`, raising `StreamIdle` when one message takes longer than `timeout`."""

    def __init__(self, source: Iterator[T], timeout: float, what: str = "stream") -> None:
        self._source = source
        self._timeout = timeout
        self._what = what
        self._wanted: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._got: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._done = False

    def __iter__(self) -> IdleTimeoutStream[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._pull, name="sievedb-stream-reader", daemon=True
            )
            self._thread.start()
        self._wanted.put(True)
        try:
            kind, value = self._got.get(timeout=self._timeout)
        except queue.Empty:
            self.close()
            raise StreamIdle(
                f"{self._what}: no message for {self._timeout:g} s; the limit is "
                f"{self._timeout:g} s (stream_idle_timeout_s)"
            ) from None
        if kind == _ITEM:
            return value  # type: ignore[return-value]
        self._done = True
        if kind == _ERROR:
            raise value  # type: ignore[misc]
        raise StopIteration

    def close(self) -> None:
        """Let the helper thread exit once its pending `next` (if any) returns."""
        self._done = True
        self._wanted.put(False)

    def _pull(self) -> None:
        while self._wanted.get():
            try:
                item = next(self._source)
            except StopIteration:
                self._got.put((_END, None))
                return
            except BaseException as exc:  # noqa: BLE001 - the call ended: hand it over
                self._got.put((_ERROR, exc))
                return
            self._got.put((_ITEM, item))
