"""Exact (brute-force) scoring with numpy: the always-correct search path and the test oracle.

Scores follow the collection metric: cosine and inner product return similarities (higher is
closer; cosine vectors are stored normalised so both are a dot product), L2 returns squared
euclidean distances (lower is closer).
"""

from __future__ import annotations

import numpy as np

from sievedb_server.core.types import Metric

__all__ = ["exact_topk", "score_matrix", "topk_among"]


def score_matrix(
    vectors: np.ndarray, queries: np.ndarray, metric: Metric, sqnorms: np.ndarray | None = None
) -> np.ndarray:
    """Scores of every (query, vector) pair, shape (n_queries, n_vectors), float32."""
    # One query: a matrix-vector product (gemv) beats a 1-row gemm.
    dots = (vectors @ queries[0])[None, :] if queries.shape[0] == 1 else queries @ vectors.T
    if metric is not Metric.L2:
        return dots
    if sqnorms is None:
        sqnorms = np.einsum("ij,ij->i", vectors, vectors)
    qn = np.einsum("ij,ij->i", queries, queries)
    dist = sqnorms[None, :] - 2.0 * dots + qn[:, None]
    np.maximum(dist, 0.0, out=dist)
    return dist


def exact_topk(
    scores: np.ndarray, k: int, metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    """Best `k` positions per row of `scores` (n_queries, n), best first, with their scores.

    Rows may hold -inf (similarities) or +inf (distances) for excluded positions; callers trim
    them. Ties are broken by position so results are deterministic.
    """
    n = scores.shape[1]
    k = min(k, n)
    if k == 0:
        empty = np.empty((scores.shape[0], 0))
        return empty.astype(np.int64), empty.astype(np.float32)
    keyed = -scores if metric.higher_is_closer else scores
    if scores.shape[0] == 1:
        return _topk_row(keyed[0], scores[0], k)
    if k < n:
        part = np.argpartition(keyed, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), (scores.shape[0], n)).copy()
    part_keys = np.take_along_axis(keyed, part, axis=1)
    order = np.lexsort((part, part_keys), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx.astype(np.int64), np.take_along_axis(scores, idx, axis=1).astype(np.float32)


def _topk_row(keyed: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One query: the same answer as the batched path with 1-D operations (less overhead)."""
    part = np.argpartition(keyed, k - 1)[:k] if k < keyed.shape[0] else np.arange(keyed.shape[0])
    idx = part[np.lexsort((part, keyed[part]))]
    return idx[None, :].astype(np.int64), scores[idx][None, :].astype(np.float32)


def topk_among(
    data: np.ndarray,
    labels: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: Metric,
    sqnorms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each query among `labels` (sorted rows of `data`): labels, scores.

    The numpy form of `native_scan.topk_among` (used when the extension is not built).
    """
    labels = np.asarray(labels, dtype=np.int64)
    hi = int(labels[-1]) + 1
    if labels.size * 2 > hi:
        # Dense: score the contiguous prefix and drop the other rows, avoiding a gather.
        scores = score_matrix(data[:hi], queries, metric, None if sqnorms is None else sqnorms[:hi])
        excluded = np.ones(hi, dtype=bool)
        excluded[labels] = False
        scores[:, excluded] = np.inf if metric is Metric.L2 else -np.inf
        return exact_topk(scores, k, metric)
    # np.take copies whole rows (one memcpy each); fancy indexing is ~15 % slower here.
    sub = np.take(data, labels, axis=0)
    scores = score_matrix(sub, queries, metric, None if sqnorms is None else sqnorms[labels])
    pos, top = exact_topk(scores, k, metric)
    return labels[pos], top
