"""A contiguous, memory-mapped float32 array of vectors indexed by label (derived from LMDB).

The exact path scores straight from this array (no `hnswlib.get_items` on hot paths). It is a
derived artefact like the HNSW file: flushed at checkpoints and repaired by replay on open.
Alongside it live the in-memory `live` mask and, for L2, squared norms.

Disk space is reserved (`posix_fallocate`) for every row before the row can be written, and
the file grows before the old mapping is dropped. A sparse mapped page that the disk cannot
back kills the process with SIGBUS when it is first written; a failed reservation instead
raises OSError (ENOSPC / EFBIG) from `ensure_capacity` and leaves the array as it was, so a
write that cannot get room is refused before anything is committed (see `storage.store`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["VectorArray"]

PAGE_FLOATS = 4096 // 4


class VectorArray:
    """Label-indexed vectors in `path` (raw float32, row-major), growing by doubling.

    Not thread-safe by itself: the owning collection serialises growth against readers.
    """

    def __init__(self, path: Path, dim: int, capacity: int, *, keep_sqnorms: bool) -> None:
        self.path = path
        self.dim = dim
        self.capacity = 0
        self.reserved = 0  # rows [0, reserved) have disk blocks (the rest of the map is sparse)
        self._mm: np.memmap | None = None
        self._view = np.zeros((0, dim), dtype="<f4")
        self.live = np.zeros(0, dtype=bool)
        self.sqnorms: np.ndarray | None = np.zeros(0, dtype=np.float32) if keep_sqnorms else None
        self.ensure_capacity(max(capacity, 1024))

    @property
    def data(self) -> np.ndarray:
        """The vectors as a plain ndarray view of the mapping (indexing a np.memmap subclass
        costs extra per call on the hot path)."""
        return self._view

    def ensure_capacity(self, needed: int) -> bool:
        """Grow to hold labels < `needed`; returns True if the array was remapped.

        Raises OSError (nothing changed) if the disk cannot hold `needed` rows.
        """
        self._reserve(needed)
        if needed <= self.capacity:
            return False
        new_cap = max(needed, self.capacity * 2, 1024)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            current = fh.seek(0, os.SEEK_END)
            want = new_cap * self.dim * 4
            if current < want:
                fh.truncate(want)  # sparse: blocks come from _reserve, ahead of any write
        mm = np.memmap(self.path, dtype="<f4", mode="r+", shape=(new_cap, self.dim))
        if self._mm is not None:
            self._mm.flush()
        self._mm = mm
        self._view = np.asarray(mm)
        self._prefault(min(self.reserved, new_cap))
        live = np.zeros(new_cap, dtype=bool)
        live[: self.live.shape[0]] = self.live
        self.live = live
        if self.sqnorms is not None:
            sq = np.zeros(new_cap, dtype=np.float32)
            sq[: self.sqnorms.shape[0]] = self.sqnorms
            self.sqnorms = sq
        self.capacity = new_cap
        return True

    def _prefault(self, rows: int) -> None:
        """Map the pages of rows [0, rows) into this process now (one read per 4 KiB page).

        A fresh mapping has no page-table entries: the first touch of each page costs a minor
        fault, and an exact scan gathers rows scattered over the file: a 46-row gather took
        19 / 22 / 78 µs (median / mean / p99) on a fresh mapping against 13 / 16 / 34 µs
        pre-faulted, the same as anonymous memory (`benchmarks/results/prefault.md`, 100k ×
        384). Skipped when the rows would take more than half the machine's memory
        (a larger-than-RAM collection relies on the page cache instead).
        """
        nbytes = rows * self.dim * 4
        try:
            ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            ram = 0
        if rows <= 0 or (ram and nbytes > ram // 2):
            return
        flat = self._view.reshape(-1)[: rows * self.dim]
        np.add.reduce(flat[:: PAGE_FLOATS])  # touches one float in every page

    def _reserve(self, needed: int) -> None:
        """Allocate disk blocks for rows < needed (in steps of ~1/8, so rarely called)."""
        if needed <= self.reserved:
            return
        rows = max(needed, self.reserved + self.reserved // 8, 1024)
        row_bytes = self.dim * 4
        self.path.parent.mkdir(parents=True, exist_ok=True)
        start = self.reserved * row_bytes
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                os.posix_fallocate(fd, start, rows * row_bytes - start)
            except OSError:
                if rows == needed:
                    raise
                rows = needed  # the generous step did not fit: try exactly what is needed
                os.posix_fallocate(fd, start, rows * row_bytes - start)
        finally:
            os.close(fd)
        self.reserved = rows

    def write(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        self.data[labels] = vectors
        self.live[labels] = True
        if self.sqnorms is not None:
            self.sqnorms[labels] = np.einsum("ij,ij->i", vectors, vectors)

    def recompute_sqnorms(self, chunk: int = 65_536) -> None:
        """Derive the squared norms from the file (after loading it from disk)."""
        if self.sqnorms is None:
            return
        for start in range(0, self.capacity, chunk):
            block = np.asarray(self.data[start : start + chunk])
            self.sqnorms[start : start + chunk] = np.einsum("ij,ij->i", block, block)

    def kill(self, labels: np.ndarray) -> None:
        self.live[labels] = False

    def flush(self) -> None:
        if self._mm is not None:
            self._mm.flush()

    def close(self) -> None:
        self.flush()
        self._mm = None
        self._view = np.zeros((0, self.dim), dtype="<f4")
