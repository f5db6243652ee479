"""Retrieval metrics and geometry helpers behind the compatibility checks (pure numpy).

Conventions (shared by every check, documented once here):
- `metric` is the collection's metric: "cosine" (vectors L2-normalised first, d = 1 - a.b),
  "ip" (d = -a.b) or "l2" (d = squared Euclidean distance).
- Ranking is by ascending distance; ties keep gallery order (stable sort), so argmin picks the
  first gallery item among equals. Every number is deterministic for given inputs and seed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "METRICS",
    "average_precision",
    "class_means",
    "distances",
    "normalise",
    "prepare",
    "stratified_split",
    "templates",
    "top1_correct",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
METRICS = ("cosine", "ip", "l2")


def normalise(x: F64) -> F64:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    out: F64 = x / np.where(norms == 0.0, 1.0, norms)
    return out


def prepare(x: NDArray[np.floating], metric: str) -> F64:
    """float64 copy, L2-normalised for the cosine metric."""
    arr = np.asarray(x, dtype=np.float64)
    return normalise(arr) if metric == "cosine" else arr


def distances(a: F64, b: F64, metric: str) -> F64:
    """|a| x |b| distance matrix (inputs already `prepare`d)."""
    if metric == "cosine":
        return 1.0 - a @ b.T
    if metric == "ip":
        return -(a @ b.T)
    if metric == "l2":
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        out: F64 = np.maximum(sq, 0.0)
        return out
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def pair_distances(a: F64, b: F64, metric: str) -> F64:
    """Row-wise d(a_i, b_i)."""
    if metric == "cosine":
        return 1.0 - (a * b).sum(1)
    if metric == "ip":
        return -(a * b).sum(1)
    diff = a - b
    out: F64 = (diff * diff).sum(1)
    return out


def stratified_split(labels: I64, fraction: float, seed: int) -> NDArray[np.bool_]:
    """Boolean mask choosing ~`fraction` of each class (at least one, at most all but one)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        take = round(fraction * len(idx))
        if len(idx) >= 2:
            take = min(max(take, 1), len(idx) - 1)
        mask[idx[:take]] = True
    return mask


def top1_correct(dist: F64, query_labels: I64, gallery_labels: I64) -> NDArray[np.bool_]:
    """Per query: is the nearest gallery item of the query's class?"""
    out: NDArray[np.bool_] = gallery_labels[np.argmin(dist, axis=1)] == query_labels
    return out


def average_precision(dist: F64, query_labels: I64, gallery_labels: I64) -> F64:
    """Per-query AP over the full ranking (NaN for a query with no relevant gallery item)."""
    order = np.argsort(dist, axis=1, kind="stable")
    rel = gallery_labels[order] == query_labels[:, None]
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, dist.shape[1] + 1)[None, :]
    n_rel = rel.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap: F64 = ((hits / ranks) * rel).sum(1) / n_rel
    return np.where(n_rel > 0, ap, np.nan)


def class_means(x: F64, labels: I64, classes: I64, metric: str) -> F64:
    """One mean per class (in `classes` order), re-normalised for the cosine metric."""
    means = np.stack([x[labels == c].mean(axis=0) for c in classes])
    return normalise(means) if metric == "cosine" else means


def templates(x: F64, labels: I64, metric: str) -> tuple[F64, I64]:
    """Gallery collapsed to one template per class present (the iamcl2r protocol)."""
    classes = np.unique(labels)
    return class_means(x, labels, classes, metric), classes
