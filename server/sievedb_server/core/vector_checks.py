"""Checks on incoming vectors and queries: shape, NaN/Inf, and whether cosine can normalise.

A cosine row must have a squared norm (summed in float64) that is a normal float32: zero has
no direction, and a norm that over- or underflows float32 would be stored or searched as
garbage. The rule is the same for points and queries. Queries are also normalised here, in
the same pass when the C++ scan extension is built (`native_scan.checked_queries`).
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np

from sievedb_server.errors import DimensionMismatch, InvalidVector
from sievedb_server.index import native_scan

__all__ = ["as_matrix", "check_rows", "checked_queries"]

_FLT_MIN = float(np.finfo(np.float32).tiny)
_FLT_MAX = float(np.finfo(np.float32).max)


def as_matrix(vectors: Any, dim: int, collection: str, what: str) -> np.ndarray:
    """`vectors` as a C-contiguous float32 (n, dim) matrix, n ≥ 1, or InvalidVector."""
    arr = np.asarray(vectors)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidVector(f"{what} must be a non-empty (n, dim) matrix, got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise DimensionMismatch(
            f"collection {collection!r} has dim {dim}, {what} have dim {arr.shape[1]}"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_rows(arr: np.ndarray, what: str, *, cosine: bool, row_base: int = 0) -> None:
    """Raise InvalidVector for the first row with NaN/Inf (or, for cosine, no usable norm)."""
    if not cosine:
        if not np.isfinite(arr).all():  # one reduction on the common path; rows on error
            _refuse(arr, int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0]), what, row_base)
        return
    # The squared norms answer both checks: NaN or Inf anywhere in a row makes its norm so.
    sq = np.einsum("ij,ij->i", arr, arr, dtype=np.float64)
    bad = ~((sq >= _FLT_MIN) & (sq <= _FLT_MAX))  # NaN compares False: bad
    if bad.any():
        _refuse(arr, int(np.flatnonzero(bad)[0]), what, row_base)


def checked_queries(arr: np.ndarray, *, cosine: bool) -> np.ndarray:
    """Checked queries, normalised for cosine (one C++ pass when the extension is built)."""
    if native_scan.AVAILABLE:
        out, bad = native_scan.checked_queries(arr, normalise=cosine)
        if bad >= 0:
            _refuse(arr, bad, "queries", 0)
        return out
    check_rows(arr, "queries", cosine=cosine)
    if not cosine:
        return arr
    sq = np.einsum("ij,ij->i", arr, arr, dtype=np.float64)
    return (arr / np.sqrt(sq)[:, None]).astype(np.float32)


def _refuse(arr: np.ndarray, row: int, what: str, row_base: int) -> NoReturn:
    where = f"{what} row {row_base + row}"
    values = arr[row]
    if not np.isfinite(values).all():
        raise InvalidVector(f"{where} contains NaN or Inf")
    if not values.any():
        raise InvalidVector(f"{where} is all zeros, which has no cosine direction")
    sq = float(np.dot(values.astype(np.float64), values.astype(np.float64)))
    raise InvalidVector(
        f"{where} cannot be normalised: its squared norm {sq:.3g} "
        f"{'overflows' if sq > _FLT_MAX else 'underflows'} float32"
    )
