"""A contiguous float32 array of vectors indexed by label, kept in memory and written through
to a file (derived from LMDB).

The exact path scores straight from this array (no `hnswlib.get_items` on hot paths). The
array lives in anonymous memory, which the kernel can back with transparent huge pages (numpy
asks for them on large allocations); a memory-mapped file is backed by 4 KiB pages only, and
an exact scan of rows scattered over 150 MB then misses the TLB about once per row. In
isolation the scan of 46–1,000 scattered rows was 1.06–1.08× as fast from anonymous memory
(`python -m benchmarks.bench_vector_memory`, `benchmarks/results/vector_memory.md`); in the
server, next to the graph and the indexes, the TLB is under more pressure. It also retires a
hazard: a mapped page the disk cannot back kills the process with SIGBUS, a failed write is an
error. The collection must fit in memory either way: hnswlib keeps its own copy of every
vector.

The file is a derived artefact like the HNSW file: every write goes through to it (`pwrite`
of the changed rows), it is fsynced at checkpoints and repaired by replay on open, where it
is read back into memory. Alongside the vectors live the in-memory `live` mask and, for L2,
squared norms.

Also alongside, in memory only: each row's 8-bit scalar quantisation (SQ8, `sq8_encode`), a
quarter of the row's bytes, with a bound on how far a score from it can be from the float32
score. The exact scan reads these first and rescores from float32 only the rows that can
still make the top k (`native_scan.topk_among_sq8`): the same answer from about a quarter of
the memory traffic, and an exact scan of scattered rows is bound by memory traffic.

Disk space is reserved (`posix_fallocate`) for every row before the row can be written, so a
write that cannot get room is refused before anything is committed (`ensure_capacity` raises
OSError, ENOSPC / EFBIG, and leaves the array as it was; see `storage.store`). Should a write
to the file still fail, the array keeps the row and `flush` raises, so no checkpoint stamps a
file that lacks it (the next open replays those rows from LMDB).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["VectorArray", "sq8_encode"]


def sq8_encode(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of float32 `vectors` (n, d) as int8 codes (n, d) and float32 (n, 3) meta.

    Row x is approximated by x̂ = scale·c, with scale = max|x_i| / 127 (a float32) and c the
    nearest integers; meta holds (scale, err, ‖x̂‖) with err ≥ ‖x − x̂‖₂ plus a float-rounding
    slack of 2·(d + 32)·2⁻²³·‖x‖, computed in float64 and rounded up to float32 (as is ‖x̂‖).
    A dot product with q computed from the codes is then within ‖q‖·err of the float32 one,
    and a euclidean distance within err: what `topk_among_sq8` relies on to stay exact.
    """
    x = np.asarray(vectors, dtype=np.float64)
    d = x.shape[1]
    scale = (np.abs(x).max(axis=1, initial=0.0) / 127.0).astype(np.float32)
    s = scale.astype(np.float64)[:, None]
    safe = np.where(s > 0, s, 1.0)
    codes = np.clip(np.rint(x / safe), -127, 127) * (s > 0)
    approx = codes * s
    resid = np.sqrt(np.einsum("ij,ij->i", x - approx, x - approx))
    slack = 2.0 * (d + 32) * 2.0**-23 * np.sqrt(np.einsum("ij,ij->i", x, x))
    meta = np.empty((x.shape[0], 3), dtype=np.float32)
    meta[:, 0] = scale
    meta[:, 1] = _rounded_up(resid + slack)
    meta[:, 2] = _rounded_up(np.sqrt(np.einsum("ij,ij->i", approx, approx)))
    return codes.astype(np.int8), meta


def _rounded_up(values: np.ndarray) -> np.ndarray:
    """float64 → the nearest float32 at or above each value."""
    out = values.astype(np.float32)
    return np.where(out < values, np.nextafter(out, np.float32(np.inf)), out)


class VectorArray:
    """Label-indexed vectors (raw float32, row-major) in memory and in `path`, growing by
    doubling.

    Not thread-safe by itself: the owning collection serialises growth against readers.
    """

    def __init__(self, path: Path, dim: int, capacity: int, *, keep_sqnorms: bool) -> None:
        self.path = path
        self.dim = dim
        self.capacity = 0
        self.reserved = 0  # rows [0, reserved) have disk blocks (the rest of the file is sparse)
        self._fd: int | None = None
        self._failed: OSError | None = None  # a write-through that did not reach the file
        self._view = np.zeros((0, dim), dtype="<f4")
        self.live = np.zeros(0, dtype=bool)
        self.sqnorms: np.ndarray | None = np.zeros(0, dtype=np.float32) if keep_sqnorms else None
        self.codes = np.zeros((0, dim), dtype=np.int8)  # SQ8 rows (sq8_encode)
        self.code_meta = np.zeros((0, 3), dtype=np.float32)  # (scale, err, ‖x̂‖) per row
        try:
            self.ensure_capacity(max(capacity, 1024))
        except BaseException:
            if self._fd is not None:  # e.g. no room for the rows: do not leak the descriptor
                os.close(self._fd)
                self._fd = None
            raise

    @property
    def data(self) -> np.ndarray:
        """The vectors, (capacity, dim) float32, C-contiguous."""
        return self._view

    def ensure_capacity(self, needed: int) -> bool:
        """Grow to hold labels < `needed`; returns True if the array was reallocated.

        Raises OSError (nothing changed) if the disk cannot hold `needed` rows.
        """
        self._reserve(needed)
        if needed <= self.capacity:
            return False
        new_cap = max(needed, self.capacity * 2, 1024)
        fd = self._open()
        want = new_cap * self.dim * 4
        if os.fstat(fd).st_size < want:
            os.ftruncate(fd, want)  # sparse: blocks come from _reserve, ahead of any write
        view = np.empty((new_cap, self.dim), dtype="<f4")
        codes = np.zeros((new_cap, self.dim), dtype=np.int8)
        meta = np.zeros((new_cap, 3), dtype=np.float32)
        if self.capacity:
            view[: self.capacity] = self._view
            view[self.capacity :] = 0.0
            codes[: self.capacity] = self.codes
            meta[: self.capacity] = self.code_meta
        else:
            self._read_file(fd, view)
            for start in range(0, new_cap, 65_536):  # what the file held (zeros encode as 0)
                block = view[start : start + 65_536]
                codes[start : start + 65_536], meta[start : start + 65_536] = sq8_encode(block)
        self._view, self.codes, self.code_meta = view, codes, meta
        live = np.zeros(new_cap, dtype=bool)
        live[: self.live.shape[0]] = self.live
        self.live = live
        if self.sqnorms is not None:
            sq = np.zeros(new_cap, dtype=np.float32)
            sq[: self.sqnorms.shape[0]] = self.sqnorms
            self.sqnorms = sq
        self.capacity = new_cap
        return True

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    @staticmethod
    def _read_file(fd: int, view: np.ndarray) -> None:
        """Fill `view` from the start of the file (what a previous run wrote); zeros after."""
        flat = view.reshape(-1).view(np.uint8)
        buf = memoryview(flat)
        done = 0
        while done < len(buf):
            got = os.preadv(fd, [buf[done:]], done)
            if got == 0:  # end of file
                break
            done += got
        flat[done:] = 0

    def _reserve(self, needed: int) -> None:
        """Allocate disk blocks for rows < needed (in steps of ~1/8, so rarely called)."""
        if needed <= self.reserved:
            return
        rows = max(needed, self.reserved + self.reserved // 8, 1024)
        row_bytes = self.dim * 4
        start = self.reserved * row_bytes
        fd = self._open()
        try:
            os.posix_fallocate(fd, start, rows * row_bytes - start)
        except OSError:
            if rows == needed:
                raise
            rows = needed  # the generous step did not fit: try exactly what is needed
            os.posix_fallocate(fd, start, rows * row_bytes - start)
        self.reserved = rows

    def write(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        self._view[labels] = vectors
        self.codes[labels], self.code_meta[labels] = sq8_encode(self._view[labels])
        self.live[labels] = True
        if self.sqnorms is not None:
            self.sqnorms[labels] = np.einsum("ij,ij->i", vectors, vectors)
        self._write_through(np.asarray(labels, dtype=np.int64))

    def _write_through(self, labels: np.ndarray) -> None:
        """pwrite the rows of `labels` to the file, one call per run of consecutive labels."""
        if labels.size == 0:
            return
        rows = np.unique(labels)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate(([rows[0]], rows[breaks]))
        ends = np.concatenate((rows[breaks - 1] + 1, [rows[-1] + 1]))
        fd, row_bytes = self._open(), self.dim * 4
        try:
            for start, end in zip(starts.tolist(), ends.tolist()):
                buf = memoryview(self._view[start:end].reshape(-1)).cast("B")
                done = 0
                while done < len(buf):
                    done += os.pwrite(fd, buf[done:], start * row_bytes + done)
        except OSError as exc:
            self._failed = exc  # the array holds the rows; flush() refuses to vouch for the file

    def recompute_sqnorms(self, chunk: int = 65_536) -> None:
        """Derive the squared norms from the vectors (after loading them from disk)."""
        if self.sqnorms is None:
            return
        for start in range(0, self.capacity, chunk):
            block = self.data[start : start + chunk]
            self.sqnorms[start : start + chunk] = np.einsum("ij,ij->i", block, block)

    def kill(self, labels: np.ndarray) -> None:
        self.live[labels] = False

    def flush(self) -> None:
        """Make the file durable; OSError if a write-through failed since it was opened."""
        if self._failed is not None:
            raise OSError(
                self._failed.errno, f"vector file {self.path} missed a write: {self._failed}"
            )
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._view = np.zeros((0, self.dim), dtype="<f4")
            self.codes = np.zeros((0, self.dim), dtype=np.int8)
            self.code_meta = np.zeros((0, 3), dtype=np.float32)
