"""Readers for the binary files the published filtered-ANN datasets ship (pure numpy).

Vectors are memory-mapped, never read whole: a 44.8 GB `.fvecs` base must stream. The layouts
(all little-endian):

| format   | layout                                                                        |
|----------|-------------------------------------------------------------------------------|
| `.fvecs` | per row: int32 d, then d float32 (TEXMEX); all rows the same d                 |
| `.ivecs` | per row: int32 m, then m int32; rows MAY differ in length (arxiv-for-fanns GT) |
| `.u8bin` / `.fbin` | uint32 n, uint32 d, then n·d uint8 / float32 (big-ann-benchmarks)    |
| `.spmat` | int64 nrow, ncol, nnz; int64 indptr[nrow+1]; int32 indices[nnz]; float32 data[nnz] (CSR) |
| `.ibin` GT | uint32 n, uint32 k, then int32 ids[n·k], then float32 distances[n·k]           |

Every malformed file raises `FormatError` naming the file and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Csr",
    "FormatError",
    "check_fvecs_dims",
    "fvecs_as_float",
    "fvecs_memmap",
    "fvecs_records",
    "read_ivecs_ragged",
    "read_knn_bin",
    "read_spmat",
    "xbin_memmap",
]

_MAX_DIM = 1 << 20


class FormatError(ValueError):
    """A dataset file is malformed (the message names the file)."""


def fvecs_records(path: Path, limit: int | None = None) -> np.ndarray:
    """An `.fvecs` file as a read-only (n, d + 1) int32 memmap: column 0 is each row's dim.

    Only the first and last row's dims are checked here (checking all would read the whole
    file); `check_fvecs_dims` checks a block as it is streamed.
    """
    size = path.stat().st_size
    if size < 4:
        raise FormatError(f"{path}: too short for an .fvecs file ({size} bytes)")
    d = int(np.fromfile(path, dtype="<i4", count=1)[0])
    if not 0 < d <= _MAX_DIM:
        raise FormatError(f"{path}: row 0 declares dim {d}; not an .fvecs file")
    row_bytes = 4 * (d + 1)
    if size % row_bytes:
        raise FormatError(
            f"{path}: {size} bytes is not a whole number of {row_bytes}-byte rows of dim {d}"
        )
    n = size // row_bytes
    rec = np.memmap(path, dtype="<i4", mode="r", shape=(n, d + 1))
    if int(rec[-1, 0]) != d:
        raise FormatError(f"{path}: last row declares dim {int(rec[-1, 0])}, first row {d}")
    return rec if limit is None else rec[: min(int(limit), n)]


def fvecs_memmap(path: Path, limit: int | None = None) -> np.ndarray:
    """The (n, d) float32 rows of an `.fvecs` file as a read-only memmap view (no copy).

    The file is mapped as (n, d + 1) int32 records and viewed as float32 without the dim
    column, so slicing it reads only the touched rows.
    """
    return fvecs_as_float(fvecs_records(path, limit))


def fvecs_as_float(records: np.ndarray) -> np.ndarray:
    """The float32 vector part of (n, d + 1) int32 `.fvecs` records (a view)."""
    return records.view("<f4")[:, 1:]


def check_fvecs_dims(chunk_records: np.ndarray, path: Path, start: int) -> None:
    """Raise if any row of a (rows, d + 1) int32 record block declares another dim."""
    d = chunk_records.shape[1] - 1
    bad = np.flatnonzero(chunk_records[:, 0] != d)
    if bad.size:
        row = start + int(bad[0])
        raise FormatError(
            f"{path}: row {row} declares dim {int(chunk_records[bad[0], 0])}, not {d}"
        )


def read_ivecs_ragged(path: Path, width: int | None = None) -> np.ndarray:
    """An `.ivecs` file whose rows may differ in length → int64 (n, width) padded with -1.

    `width` defaults to the longest row; longer rows are cut to it. Some writers pad short rows
    with ids near UINT32_MAX instead of shortening them; read as int32 those are negative, so
    every negative id becomes -1.
    """
    flat = np.fromfile(path, dtype="<i4")
    starts: list[int] = []
    lengths: list[int] = []
    pos = 0
    while pos < flat.size:
        m = int(flat[pos])
        if m < 0 or pos + 1 + m > flat.size:
            raise FormatError(f"{path}: row {len(starts)} declares {m} ids past the end of file")
        starts.append(pos + 1)
        lengths.append(m)
        pos += 1 + m
    w = (max(lengths) if lengths else 0) if width is None else int(width)
    out = np.full((len(starts), w), -1, dtype=np.int64)
    for i, (s, m) in enumerate(zip(starts, lengths, strict=True)):
        m = min(m, w)
        out[i, :m] = flat[s : s + m]
    out[out < 0] = -1
    return out


def xbin_memmap(path: Path, dtype: str, limit: int | None = None) -> np.ndarray:
    """The (n, d) rows of a big-ann `.u8bin` / `.i8bin` / `.fbin` file as a read-only memmap."""
    size = path.stat().st_size
    if size < 8:
        raise FormatError(f"{path}: too short for a big-ann header (8 bytes)")
    n, d = (int(x) for x in np.fromfile(path, dtype="<u4", count=2))
    item = np.dtype(dtype).itemsize
    if not 0 < d <= _MAX_DIM or size != 8 + n * d * item:
        raise FormatError(
            f"{path}: header says {n} x {d} {np.dtype(dtype).name} ({8 + n * d * item} bytes), "
            f"the file has {size} bytes"
        )
    if limit is not None:
        n = min(n, int(limit))
    return np.memmap(path, dtype=dtype, mode="r", offset=8, shape=(n, d))


@dataclass(frozen=True)
class Csr:
    """A CSR matrix's fields (memmaps): row i's columns are `indices[indptr[i]:indptr[i+1]]`."""

    nrow: int
    ncol: int
    indptr: np.ndarray  # int64 (nrow + 1,)
    indices: np.ndarray  # int32 (nnz,)
    data: np.ndarray  # float32 (nnz,)

    def prefix(self, rows: int) -> Csr:
        """The first `rows` rows (views; no copy)."""
        rows = min(int(rows), self.nrow)
        nnz = int(self.indptr[rows])
        return Csr(rows, self.ncol, self.indptr[: rows + 1], self.indices[:nnz], self.data[:nnz])

    def row(self, i: int) -> np.ndarray:
        return np.asarray(self.indices[int(self.indptr[i]) : int(self.indptr[i + 1])])


def read_spmat(path: Path) -> Csr:
    """Memory-map a big-ann `.spmat` CSR file (header int64 nrow, ncol, nnz)."""
    size = path.stat().st_size
    if size < 24:
        raise FormatError(f"{path}: too short for an .spmat header (24 bytes)")
    nrow, ncol, nnz = (int(x) for x in np.fromfile(path, dtype="<i8", count=3))
    expected = 24 + 8 * (nrow + 1) + 4 * nnz + 4 * nnz
    if min(nrow, ncol, nnz) < 0 or size != expected:
        raise FormatError(
            f"{path}: header says {nrow} x {ncol} with {nnz} non-zeros ({expected} bytes), "
            f"the file has {size} bytes"
        )
    off = 24
    indptr = np.memmap(path, dtype="<i8", mode="r", offset=off, shape=(nrow + 1,))
    off += 8 * (nrow + 1)
    indices = np.memmap(path, dtype="<i4", mode="r", offset=off, shape=(nnz,))
    off += 4 * nnz
    data = np.memmap(path, dtype="<f4", mode="r", offset=off, shape=(nnz,))
    if int(indptr[0]) != 0 or int(indptr[-1]) != nnz:
        raise FormatError(f"{path}: indptr runs {int(indptr[0])}..{int(indptr[-1])}, not 0..{nnz}")
    return Csr(nrow, ncol, indptr, indices, data)


def read_knn_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A big-ann kNN ground-truth file → (ids int64 (n, k) with -1 padding, distances float32).

    Fewer than k matches are written as negative ids (faiss's -1, or UINT32_MAX read as int32).
    """
    size = path.stat().st_size
    if size < 8:
        raise FormatError(f"{path}: too short for a ground-truth header (8 bytes)")
    n, k = (int(x) for x in np.fromfile(path, dtype="<u4", count=2))
    if size != 8 + n * k * 8:
        raise FormatError(
            f"{path}: header says {n} x {k} ({8 + n * k * 8} bytes), the file has {size} bytes"
        )
    ids = np.fromfile(path, dtype="<i4", count=n * k, offset=8).reshape(n, k).astype(np.int64)
    dist = np.fromfile(path, dtype="<f4", count=n * k, offset=8 + 4 * n * k).reshape(n, k)
    ids[ids < 0] = -1
    return ids, dist
