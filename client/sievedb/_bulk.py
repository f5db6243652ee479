"""Client side of the bulk-load stream: turn arrays or batch iterables into request chunks (private).

Chunks are built lazily as gRPC pulls them, and at most `window` chunks are unacknowledged at
any time (the server acknowledges each chunk once it is durable), so the client holds a few
chunks however large the source. A problem raised by the caller's iterable (a malformed file
row, say) ends the stream cleanly, so every chunk before it is committed, and is re-raised
after the server has acknowledged the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb import _wire

__all__ = ["ChunkStream", "default_batch_size"]

TARGET_CHUNK_BYTES = 4 << 20  # ~4 MiB of vectors per chunk: one LMDB transaction each
MAX_CHUNK_ROWS = 50_000
WINDOW = 3  # unacknowledged chunks in flight: overlaps reading/encoding with the server's commit


def default_batch_size(dim: int) -> int:
    return max(64, min(MAX_CHUNK_ROWS, TARGET_CHUNK_BYTES // (4 * max(dim, 1))))


@dataclass
class ChunkStream:
    """An iterator of `BulkLoadRequest`s; remembers what it sent and what went wrong.

    The request iterator runs on a gRPC thread; `acknowledged()` (called by the thread reading
    the responses) opens the window for one more chunk; `finish()` releases a blocked sender.
    """

    collection: str
    batches: Iterator[tuple[int, np.ndarray, Sequence[Any], Sequence[Any] | None]]
    load_id: str = ""
    progress: Callable[[int], Any] | None = None
    window: int = WINDOW
    sent_rows: int = 0
    chunks: int = 0
    error: BaseException | None = field(default=None)
    _slots: threading.Semaphore = field(init=False)
    _done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._slots = threading.Semaphore(self.window)

    def acknowledged(self, rows: int) -> None:
        self._slots.release()
        if self.progress is not None:
            self.progress(rows)

    def finish(self) -> None:
        self._done.set()

    def _wait_for_slot(self) -> bool:
        while not self._slots.acquire(timeout=0.1):
            if self._done.is_set():
                return False
        return not self._done.is_set()

    def __iter__(self) -> Iterator[pb.BulkLoadRequest]:
        try:
            for offset, vectors, ids, attributes in self.batches:
                matrix = _wire.vector_matrix(vectors)
                if len(ids) != matrix.shape[0]:
                    raise _wire.local_error(
                        f"chunk at row {offset}: {len(ids)} ids for {matrix.shape[0]} vectors"
                    )
                request = pb.BulkLoadRequest(
                    collection=self.collection,
                    load_id=self.load_id,
                    offset=offset,
                    ids=_wire.id_list(ids),
                    vectors=_wire.encode_vectors(matrix),
                )
                if attributes is not None:
                    if len(attributes) != matrix.shape[0]:
                        raise _wire.local_error(
                            f"chunk at row {offset}: {len(attributes)} attribute maps for "
                            f"{matrix.shape[0]} vectors"
                        )
                    request.attributes.extend(_wire.encode_attributes(a) for a in attributes)
                del matrix, vectors, ids, attributes
                if not self._wait_for_slot():
                    return
                yield request
                self.sent_rows += len(request.ids)
                self.chunks += 1
        except Exception as exc:  # noqa: BLE001 - re-raised by the caller after the reply
            self.error = exc


def array_batches(
    vectors: np.ndarray,
    ids: Sequence[Any] | np.ndarray | None,
    attributes: Sequence[Mapping[str, Any] | None] | None,
    batch_size: int,
    start: int,
) -> Iterator[tuple[int, np.ndarray, Sequence[Any], Sequence[Any] | None]]:
    """Slices of in-memory arrays from row `start` (ids default to row numbers)."""
    n = vectors.shape[0]
    if ids is not None and len(ids) != n:
        raise _wire.local_error(f"{len(ids)} ids but {n} vectors")
    if attributes is not None and len(attributes) != n:
        raise _wire.local_error(f"{len(attributes)} attribute maps but {n} vectors")
    for offset in range(start, n, batch_size):
        stop = min(offset + batch_size, n)
        chunk_ids: Any = list(range(offset, stop)) if ids is None else ids[offset:stop]
        yield offset, vectors[offset:stop], chunk_ids, (
            None if attributes is None else attributes[offset:stop]
        )


def iterable_batches(
    batches: Iterable[Any], start: int
) -> Iterator[tuple[int, np.ndarray, Sequence[Any], Sequence[Any] | None]]:
    """Normalise caller batches: ndarray, (vectors, ids[, attributes]) or a readers.Chunk."""
    offset = start
    for batch in batches:
        if hasattr(batch, "vectors") and hasattr(batch, "offset"):
            yield batch.offset, batch.vectors, batch.ids, batch.attributes
            offset = batch.offset + len(batch.ids)
            continue
        if isinstance(batch, tuple):
            vectors, ids, *rest = batch
            attributes = rest[0] if rest else None
        else:
            vectors, ids, attributes = batch, None, None
        matrix = _wire.vector_matrix(vectors)
        if ids is None:
            ids = list(range(offset, offset + matrix.shape[0]))
        yield offset, matrix, ids, attributes
        offset += matrix.shape[0]
