"""Exact top-k among a subset of the vector array, scored in place (C++), or None.

The exact strategy scores the allowed rows of the label-indexed vector array. numpy must first
gather them (`np.take` copies every row), then run a mat-vec and a partition: four calls and
a copy, which for a few hundred rows cost more than the arithmetic. The optional extension
`sievedb_server._native_scan` (see the .cpp) reads each allowed row where it lies and keeps the
best k, with the GIL released. Without it (no compiler at install time) `AVAILABLE` is False
and callers use numpy; both give the same answer up to float rounding (the tests compare them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "AVAILABLE", "SQ8_MIN_ROWS", "checked_queries", "column_among", "numeric_ids", "topk_among",
    "topk_among_sq8",
]

try:
    from sievedb_server import _native_scan as _ext
except ImportError:  # optional extension not built
    _ext = None

AVAILABLE = _ext is not None


def _require() -> Any:
    """The extension module, or RuntimeError when it was not built."""
    if _ext is None:
        raise RuntimeError("sievedb_server._native_scan is not built")
    return _ext


def topk_among(
    data: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int, *, l2: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Best `k` of `labels` (rows of `data`) per query: labels (nq, m) int64, scores (nq, m).

    Scores are dot products (higher is closer) or, with `l2`, squared euclidean distances
    (lower is closer); best first, ties by the smaller label; m = min(k, len(labels)).
    Labels must be below len(data) (checked: out of range raises IndexError).
    """
    ext = _require()
    return ext.topk_among(
        data,
        np.ascontiguousarray(labels, dtype=np.uint32),
        np.ascontiguousarray(queries, dtype=np.float32),
        int(k),
        bool(l2),
    )


# Below this many allowed rows the plain scan is used: the codes' pass and the rescoring cost
# more than the float32 rows they spare (benchmarks/bench_native_scan.py).
SQ8_MIN_ROWS = 128


def topk_among_sq8(
    data: np.ndarray,
    codes: np.ndarray,
    meta: np.ndarray,
    labels: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    l2: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """`topk_among`'s exact answer, reading each row's SQ8 codes (`vectors.sq8_encode`) first
    and rescoring from `data` only the rows that can still make the top k; plus how many
    rows were rescored."""
    ext = _require()
    found, scores, rescored = ext.topk_among_sq8(
        data, codes, meta,
        np.ascontiguousarray(labels, dtype=np.uint32),
        np.ascontiguousarray(queries, dtype=np.float32),
        int(k), bool(l2),
    )
    return found, scores, int(rescored)


def checked_queries(queries: np.ndarray, *, normalise: bool) -> tuple[np.ndarray, int]:
    """(float32 copy of `queries`, normalised when `normalise`; first bad row or -1).

    A row is bad if it holds NaN/Inf or, when normalising, its squared norm (float64) is not a
    normal float32 (see core/vector_checks.py).
    """
    ext = _require()
    out, bad = ext.checked_queries(np.ascontiguousarray(queries, dtype=np.float32), normalise)
    return out, int(bad)


def column_among(
    column: np.ndarray, labels: np.ndarray, lo: float, lo_incl: bool, hi: float, hi_incl: bool
) -> np.ndarray:
    """The sorted uint32 `labels` whose `column[label]` (float64, NaN = none) is in range."""
    ext = _require()
    return ext.column_among(
        column, labels, float(lo), bool(lo_incl), float(hi), bool(hi_incl)
    )


def numeric_ids(
    labels: np.ndarray, num: np.ndarray, is_num: np.ndarray, live: np.ndarray
) -> list[int] | None:
    """Point ids of int64 `labels` when all are numeric and live (one pass), else None."""
    ext = _require()
    return ext.numeric_ids(labels, num, is_num, live)
