"""The GIL-free label filter for hnswlib's filtered search, and its Python fallback.

hnswlib's `knn_query(filter=f)` calls `f(label)` for every candidate it visits. A Python `f`
costs a GIL acquisition and a Python call each time. The C++ extension
`sievedb_server._native_filter` provides `allowed(label)`, a plain `bool(size_t)` function that
pybind11 hands to hnswlib as a raw function pointer, so the search runs without Python. It
reads bit-per-label membership bits installed for the calling thread (see the .cpp).

That path is taken only when hnswlib and the extension share pybind11 internals (both built
with pybind11 2.x; the Makefile's venv target arranges it). Whether it is taken is checked once
at import with a tiny search: `NATIVE` is True only if the filter was called and never with the
GIL held; `REASON` says why not otherwise. Callers fall back to a Python callback then.

    with native_filter.installed(bitmap) as fn:      # fn is the C++ filter (NATIVE only)
        index.knn_query(q, k=k, num_threads=1, filter=fn)

hnswlib calls the filter on the calling thread only when the search does not fan out to its
worker threads, which see no installed bits (and so allow nothing): see `runs_inline`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from pyroaring import BitMap

from sievedb_server.index.column_filter import ColumnFilter, ColumnRange

__all__ = [
    "NATIVE", "REASON", "installed", "knn_query", "knn_query_column", "membership",
    "roaring_available", "roaring_of", "runs_inline", "warn_once_if_off",
]

try:
    from sievedb_server import _native_filter as _ext
except ImportError as _exc:  # optional extension not built (no compiler at install time)
    _ext = None
    _IMPORT_ERROR: str = str(_exc)
else:
    _IMPORT_ERROR = ""

# The bit arrays installed on each thread, innermost last. Holding them here keeps the memory the
# C++ side borrows alive until it is uninstalled, and lets a nested `installed` restore the outer.
_local = threading.local()


def membership(allowed: BitMap | np.ndarray) -> np.ndarray:
    """The membership bits of `allowed` (a BitMap or an array of labels) as uint64 words:
    bit `label & 63` of word `label >> 6`, words up to the last label's 65536-label block.

    Built in C++ from the BitMap's portable serialization, where a dense block is one memcpy,
    so the cost hardly grows with the set (a byte per label marked from the label array grew
    with every allowed label). Needs the extension.
    """
    if _ext is None:
        raise RuntimeError(f"sievedb_server._native_filter is not available: {REASON}")
    if not isinstance(allowed, BitMap):
        allowed = BitMap(np.ascontiguousarray(allowed, dtype=np.uint32))
    return _ext.roaring_bits(allowed.serialize())


def roaring_available() -> bool:
    """Whether `roaring_of` builds bitmaps in C++ (the extension is built)."""
    return _ext is not None


def roaring_of(labels: np.ndarray) -> BitMap | None:
    """The BitMap of integer `labels` (any order, repeats allowed) built in C++ as a roaring
    serialization and deserialized (whole containers copied, where BitMap(labels) inserts one
    label at a time); None when the extension is not built."""
    if _ext is None:
        return None
    if labels.dtype != np.uint32 and labels.dtype != np.int64:
        labels = labels.astype(np.int64)
    return BitMap.deserialize(_ext.roaring_of(labels))


def runs_inline(rows: int, num_threads: int) -> bool:
    """Whether hnswlib 0.8's knn_query calls the filter on the calling thread.

    It fans out to worker threads when num_threads != 1 and rows > 4 * num_threads
    (num_threads <= 0 means its default, the CPU count); count those as not inline.
    """
    return num_threads == 1 or (num_threads > 1 and rows <= 4 * num_threads)


@contextmanager
def installed(allowed: BitMap | np.ndarray) -> Iterator[Any]:
    """Install `allowed` (BitMap, uint32 label array, or uint64 bits from `membership`) for
    this thread.

    Yields the C++ filter to pass as hnswlib's `filter`; uninstalls on exit (restoring any
    outer installation). Raises RuntimeError if the extension is not built. The filter is
    GIL-free only when NATIVE; otherwise it still answers correctly, through a Python call.
    """
    if _ext is None:
        raise RuntimeError(f"sievedb_server._native_filter is not available: {REASON}")
    if isinstance(allowed, np.ndarray) and allowed.dtype == np.uint64:
        bits = np.ascontiguousarray(allowed)
    else:
        bits = membership(allowed)
    _push(bits)
    try:
        yield _ext.allowed
    finally:
        _pop()


def knn_query(
    index: Any, queries: np.ndarray, k: int, allowed: BitMap, num_threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """`index.knn_query` restricted to `allowed` by the C++ filter: `installed` without the
    context manager, for the per-query path. Needs the extension; see `runs_inline`."""
    if _ext is None:
        raise RuntimeError(f"sievedb_server._native_filter is not available: {REASON}")
    _push(_ext.roaring_bits(allowed.serialize()))
    try:
        return index.knn_query(  # type: ignore[no-any-return]
            queries, k=k, num_threads=num_threads, filter=_ext.allowed
        )
    finally:
        _pop()


def knn_query_column(
    index: Any, queries: np.ndarray, k: int, column_filter: ColumnFilter, num_threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """`index.knn_query` restricted by a column test (column_filter.py): the C++ `in_range` or
    `in_codes` filter reads the candidate's entry in the column, so no allowed set is built.
    Needs the extension and unchanging columns for the call (the caller's read lock); see
    `runs_inline`."""
    if _ext is None:
        raise RuntimeError(f"sievedb_server._native_filter is not available: {REASON}")
    if isinstance(column_filter, ColumnRange):
        lo, lo_incl, hi, hi_incl = column_filter.bounds
        _ext.set_range(column_filter.column, lo, lo_incl, hi, hi_incl)
        fn, clear = _ext.in_range, _ext.clear_range
    else:
        _ext.set_codes(column_filter.codes, column_filter.allowed)
        fn, clear = _ext.in_codes, _ext.clear_codes
    try:
        return index.knn_query(  # type: ignore[no-any-return]
            queries, k=k, num_threads=num_threads, filter=fn
        )
    finally:
        clear()


def _push(bits: np.ndarray) -> None:
    """Install `bits` for this thread (kept referenced until popped)."""
    stack: list[np.ndarray] = _local.__dict__.setdefault("stack", [])
    stack.append(bits)
    _ext.set_bits(bits)


def _pop() -> None:
    """Uninstall the innermost bits, restoring any outer installation."""
    stack: list[np.ndarray] = _local.stack
    stack.pop()
    if stack:
        _ext.set_bits(stack[-1])
    else:
        _ext.clear_bits()


def _probe() -> tuple[bool, str]:
    """Run a tiny filtered search with the C++ filter; (fast path taken, reason if not)."""
    if _ext is None:
        return False, f"C++ filter extension not built ({_IMPORT_ERROR})"
    try:
        import hnswlib

        n, dim = 64, 4
        vectors = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
        index = hnswlib.Index(space="l2", dim=dim)
        index.init_index(max_elements=n, M=8, ef_construction=32, random_seed=1)
        index.add_items(vectors, np.arange(n), num_threads=1)
        index.set_ef(16)
        _ext.reset_stats()
        with installed(np.arange(0, n, 2, dtype=np.uint32)) as fn:
            labels, _ = index.knn_query(vectors[:1], k=4, num_threads=1, filter=fn)
        calls, gil_seen = int(_ext.calls()), bool(_ext.gil_seen())
        _ext.reset_stats()
    except Exception as exc:  # noqa: BLE001 - any failure means "use the Python callback"
        return False, f"C++ filter probe failed: {exc!r}"
    if calls == 0:
        return False, "hnswlib never called the C++ filter"
    if gil_seen:
        return False, (
            "hnswlib calls the C++ filter through Python: it and sievedb_server._native_filter "
            "do not share pybind11 internals (hnswlib built with pybind11 3? `make clean venv`)"
        )
    if np.any(labels % 2):
        return False, "C++ filter probe returned disallowed labels"
    return True, "C++ filter on hnswlib's GIL-free fast path"


NATIVE, REASON = _probe()


_warned = threading.Event()


def warn_once_if_off(logger: logging.Logger) -> None:
    """Log once per process why filtered searches use the Python callback, if they do."""
    if not NATIVE and not _warned.is_set():
        _warned.set()
        logger.warning("filtered HNSW search calls back into Python per candidate (slower): %s",
                       REASON)
