"""Exact filtered ground truth (chunked numpy, cached on disk) and recall@k.

`filtered_ground_truth` is the benchmark's definition of the right answer: for each query, the
k nearest base rows among those passing its filter (`filterspec.mask` decides what passes),
ties broken by the smaller row id, rows padded with -1 when fewer than k rows pass. It is exact
(float64 arithmetic, no index) and bounded in memory:

* queries are grouped by identical filter, so each distinct filter's mask is evaluated once;
* a filter passing few rows (≤ `gather_rows`) is answered from just those rows, gathered from
  the (memory-mapped) base;
* the other filters, and unfiltered queries, share scans of the base in chunks, keeping a
  running top-k per query; the masks held at once and the distance blocks are sized to
  `memory_budget` bytes.

Results are cached as `.npy` under `cache_dir`, keyed by the caller's dataset key plus the
filters, k, metric, shape and a digest of the query vectors, so a second run is a file read.

`recall_at_k` scores a system's answers against it; see its docstring for the conventions
(short ground-truth rows, queries that no row passes).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks.filterspec import AttributeTable, Filter, mask, validate

__all__ = [
    "filtered_ground_truth",
    "ground_truth_digest",
    "mean_recall",
    "pass_counts",
    "recall_at_k",
]

METRICS = ("ip", "l2", "angular")
CACHE_VERSION = 1
_NO_ID = np.iinfo(np.int64).max  # sorts after every real id


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable in a filter: {value!r}")


def _canon(flt: Filter | None) -> str:
    return json.dumps(flt, default=_json_default, separators=(",", ":"))


def ground_truth_digest(
    key: str, queries: np.ndarray, filters: Sequence[Filter | None], k: int, metric: str, n: int
) -> str:
    """The cache key of one ground-truth computation (hex sha256)."""
    q = np.ascontiguousarray(queries)
    payload = {
        "version": CACHE_VERSION,
        "key": key,
        "k": int(k),
        "metric": metric,
        "n": int(n),
        "queries": [list(q.shape), str(q.dtype), hashlib.sha256(q.tobytes()).hexdigest()],
        "filters": hashlib.sha256("\n".join(_canon(f) for f in filters).encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def filtered_ground_truth(
    base: np.ndarray,
    queries: np.ndarray,
    filters: Sequence[Filter | None],
    table: AttributeTable | None,
    k: int,
    *,
    metric: str,
    cache_dir: Path | None = None,
    key: str | None = None,
    progress: bool = True,
    return_distances: bool = False,
    memory_budget: int = 128 << 20,
    gather_rows: int | None = None,
) -> Any:
    """int64 (nq, k) exact k nearest passing rows per query, -1 where fewer than k pass.

    `base` is (n, d) in any real dtype (a memmap is read in slices); `queries` (nq, d);
    `filters[i]` is query i's filterspec filter or None. `metric`: "l2" (squared Euclidean),
    "ip" (larger inner product nearer) or "angular" (larger cosine nearer). With
    `return_distances` the result is `(ids, distances)`, distances float64 in the metric's
    "smaller is nearer" form (squared L2, -dot, 1 - cos; +inf for padding). Caching needs both
    `cache_dir` and `key` (the key must identify the base contents: loaders pass their `key`).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if k < 1:
        raise ValueError("k must be at least 1")
    if base.ndim != 2 or queries.ndim != 2 or base.shape[1] != queries.shape[1]:
        raise ValueError(f"base {base.shape} and queries {queries.shape} dimensions differ")
    n, nq = int(base.shape[0]), int(queries.shape[0])
    if len(filters) != nq:
        raise ValueError(f"{len(filters)} filters for {nq} queries")
    if any(f is not None for f in filters):
        if table is None:
            raise ValueError("filtered queries need an attribute table")
        if len(table) != n:
            raise ValueError(f"the attribute table has {len(table)} rows, the base {n}")

    cache_ids = cache_dist = None
    if cache_dir is not None and key is not None:
        digest = ground_truth_digest(key, queries, filters, k, metric, n)
        cache_ids = Path(cache_dir) / f"gt-{digest}.npy"
        cache_dist = Path(cache_dir) / f"gt-{digest}.dist.npy"
        if cache_ids.exists() and (not return_distances or cache_dist.exists()):
            ids = np.load(cache_ids)
            return (ids, np.load(cache_dist)) if return_distances else ids

    ids, dist = _compute(
        base, queries, filters, table, k, metric, progress, memory_budget, gather_rows
    )
    if cache_ids is not None and cache_dist is not None:
        cache_ids.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save(cache_dist, dist)
        _atomic_save(cache_ids, ids)
    return (ids, dist) if return_distances else ids


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


# --- the computation --------------------------------------------------------------------------


class _TopK:
    """Running k best (distance, id) per query; ties resolved by the smaller id."""

    def __init__(self, nq: int, k: int) -> None:
        self.k = k
        self.dist = np.full((nq, k), np.inf)
        self.ids = np.full((nq, k), _NO_ID, dtype=np.int64)

    def merge(self, rows: np.ndarray, d: np.ndarray, col_ids: np.ndarray) -> None:
        """Fold a block of distances (len(rows), c) over base ids `col_ids` into `rows`."""
        bd, bi = _block_topk(d, col_ids, self.k)
        cand_d = np.concatenate([self.dist[rows], bd], axis=1)
        cand_i = np.concatenate([self.ids[rows], bi], axis=1)
        order = np.lexsort((cand_i, cand_d), axis=1)[:, : self.k]
        self.dist[rows] = np.take_along_axis(cand_d, order, axis=1)
        self.ids[rows] = np.take_along_axis(cand_i, order, axis=1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        ids = self.ids.copy()
        ids[~np.isfinite(self.dist)] = -1
        return ids, self.dist


def _block_topk(d: np.ndarray, col_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ≤ k best columns of each row of `d`, as (distances, ids); inf entries get `_NO_ID`.

    argpartition alone is not deterministic when several columns tie at the k-th distance;
    those rows (rare in real data) are re-selected with a full (distance, id) sort.
    """
    m, c = d.shape
    if c <= k:
        part = np.broadcast_to(np.arange(c), (m, c))
    else:
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(d, part, axis=1).max(axis=1)
        finite = np.isfinite(kth)
        tied = np.flatnonzero(finite & ((d <= kth[:, None]).sum(axis=1) > k))
        if tied.size:
            part = part.copy()
            for r in tied:
                part[r] = np.lexsort((col_ids, d[r]))[:k]
    bd = np.take_along_axis(d, part, axis=1)
    bi = np.where(np.isfinite(bd), col_ids[part], _NO_ID)
    return bd, bi


class _Queries:
    """The query vectors, converted to float64 (and normalised for angular) a batch at a time."""

    def __init__(self, queries: np.ndarray, metric: str) -> None:
        self.queries, self.metric = queries, metric

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(self.queries[rows], dtype=np.float64)
        if self.metric == "angular":
            q = q / _safe_norm(q)[:, None]
        return q, np.einsum("ij,ij->i", q, q)


class _Masker:
    """`filterspec.mask`, with `contains` on keyword_list columns answered from posting lists.

    filterspec evaluates `contains` by comparing every list entry (and looks the value up in
    the vocabulary tuple), which is what a 10M-row YFCC table with 100k two-tag queries cannot
    afford. The posting lists are built once per column on first use; the result is the same
    mask (tests check it against filterspec).
    """

    def __init__(self, table: AttributeTable) -> None:
        self.table = table
        self._postings: dict[str, tuple[dict[str, int], np.ndarray, np.ndarray]] = {}

    def __call__(self, flt: Filter) -> np.ndarray:
        op = flt[0]
        if op in ("and", "or"):
            out = self(flt[1])
            for sub in flt[2:]:
                if op == "and":
                    out &= self(sub)
                else:
                    out |= self(sub)
            return out
        if op == "not":
            return ~self(flt[1])
        if op == "contains":
            return self._contains(flt[1], flt[2])
        return mask(flt, self.table)

    def _contains(self, field: str, value: Any) -> np.ndarray:
        col = self.table.columns[field]
        assert col.indptr is not None and col.vocab is not None
        if field not in self._postings:
            codes = np.asarray(col.values)
            order = np.argsort(codes, kind="stable")
            if order.size < 2**31:
                order = order.astype(np.int32)
            bounds = np.searchsorted(codes[order], np.arange(len(col.vocab) + 1))
            lookup = {v: i for i, v in enumerate(col.vocab)}
            self._postings[field] = (lookup, order, bounds)
        lookup, order, bounds = self._postings[field]
        out = np.zeros(len(col), dtype=bool)
        code = lookup.get(value, -1)  # as filterspec: a non-str value matches nothing
        if code < 0:
            return out
        positions = order[bounds[code] : bounds[code + 1]]
        out[np.searchsorted(col.indptr, positions, side="right") - 1] = True
        return out


def _safe_norm(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1)
    norm[norm == 0] = 1.0
    return norm


def _distances(qs: _Queries, rows: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    """(len(rows), len(x)) float64, smaller = nearer; `x` float64 rows (angular: normalised)."""
    q, qq = qs.batch(rows)
    dot = q @ x.T
    if metric == "l2":
        d = qq[:, None] - 2.0 * dot + np.einsum("ij,ij->i", x, x)[None, :]
        np.maximum(d, 0.0, out=d)
    elif metric == "ip":
        d = -dot
    else:
        d = 1.0 - dot
    d[np.isnan(d)] = np.inf
    return d


def _rows(base: np.ndarray, sel: Any, metric: str) -> np.ndarray:
    x = np.asarray(base[sel], dtype=np.float64)
    if metric == "angular":
        x = x / _safe_norm(x)[:, None]
    return x


def _compute(
    base: np.ndarray,
    queries: np.ndarray,
    filters: Sequence[Filter | None],
    table: AttributeTable | None,
    k: int,
    metric: str,
    progress: bool,
    memory_budget: int,
    gather_rows: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    n, dim = int(base.shape[0]), int(base.shape[1])
    nq = int(queries.shape[0])
    qs = _Queries(queries, metric)
    masker = _Masker(table) if table is not None else None
    top = _TopK(nq, k)
    groups: dict[str, list[int]] = {}
    for i, flt in enumerate(filters):
        groups.setdefault(_canon(flt), []).append(i)
    # Rows of a distance block: bounded so (rows + dim) * chunk * 8 bytes fits the budget.
    q_batch = max(1, min(nq, 1024))
    chunk = max(64, memory_budget // (8 * (dim + q_batch)))
    gather = chunk if gather_rows is None else int(gather_rows)
    mask_batch = max(1, memory_budget // max(n, 1))

    bar = tqdm(total=nq, desc="ground truth", unit="q", disable=None if progress else True)
    pending: list[tuple[np.ndarray | None, list[int]]] = []
    for canon, members in groups.items():
        flt = json.loads(canon)
        if flt is None:
            pending.append((None, members))
        else:
            if table is None or masker is None:  # pragma: no cover - checked by the caller
                raise ValueError("filtered queries need an attribute table")
            validate(flt, table.schema)
            m = masker(flt)
            passing = np.flatnonzero(m)
            if passing.size <= gather:
                _gather(base, qs, metric, top, members, passing, q_batch, memory_budget)
                bar.update(len(members))
                continue
            pending.append((m, members))
        if len(pending) >= mask_batch:
            _scan(base, qs, metric, top, pending, chunk, q_batch, progress)
            bar.update(sum(len(members) for _, members in pending))
            pending = []
    if pending:
        _scan(base, qs, metric, top, pending, chunk, q_batch, progress)
        bar.update(sum(len(members) for _, members in pending))
    bar.close()
    return top.result()


def _gather(
    base: np.ndarray,
    qs: _Queries,
    metric: str,
    top: _TopK,
    members: list[int],
    passing: np.ndarray,
    q_batch: int,
    memory_budget: int,
) -> None:
    """Answer one filter's queries from its few passing rows."""
    if passing.size == 0:
        return
    x = _rows(base, passing, metric)
    step = max(1, min(q_batch, memory_budget // (8 * passing.size)))
    rows = np.asarray(members)
    for s in range(0, rows.size, step):
        r = rows[s : s + step]
        top.merge(r, _distances(qs, r, x, metric), passing)


def _scan(
    base: np.ndarray,
    qs: _Queries,
    metric: str,
    top: _TopK,
    pending: list[tuple[np.ndarray | None, list[int]]],
    chunk: int,
    q_batch: int,
    progress: bool,
) -> None:
    """One pass over the base in chunks for every query of the pending filters."""
    n = int(base.shape[0])
    rows = np.concatenate([np.asarray(members, dtype=np.int64) for _, members in pending])
    which = np.concatenate([np.full(len(members), g) for g, (_, members) in enumerate(pending)])
    masks = [m for m, _ in pending]
    starts = range(0, n, chunk)
    for start in tqdm(
        starts, desc="scan", unit="chunk", leave=False, disable=None if progress else True
    ):
        stop = min(n, start + chunk)
        x = _rows(base, slice(start, stop), metric)
        col_ids = np.arange(start, stop, dtype=np.int64)
        allowed = np.stack(
            [np.ones(stop - start, bool) if m is None else m[start:stop] for m in masks]
        )
        for s in range(0, rows.size, q_batch):
            r, w = rows[s : s + q_batch], which[s : s + q_batch]
            d = _distances(qs, r, x, metric)
            d[~allowed[w]] = np.inf
            top.merge(r, d, col_ids)


def pass_counts(
    filters: Sequence[Filter | None], table: AttributeTable | None, n: int
) -> np.ndarray:
    """int64 per query: how many of the `n` base rows pass its filter (n for None).

    Selectivity is this / n. Identical filters are evaluated once, `contains` from posting
    lists, as in `filtered_ground_truth`.
    """
    masker = _Masker(table) if table is not None else None
    seen: dict[str, int] = {}
    out = np.empty(len(filters), dtype=np.int64)
    for i, flt in enumerate(filters):
        canon = _canon(flt)
        if canon not in seen:
            if flt is None:
                seen[canon] = n
            else:
                if masker is None or table is None:
                    raise ValueError("filtered queries need an attribute table")
                validate(flt, table.schema)
                seen[canon] = int(np.count_nonzero(masker(flt)))
        out[i] = seen[canon]
    return out


# --- recall ---------------------------------------------------------------------------------


def recall_at_k(found: Sequence[np.ndarray], gt: np.ndarray, k: int) -> np.ndarray:
    """Per-query recall@k (float64, one per query) of `found` against ground truth `gt`.

    `found[i]` is what the system returned for query i, best first; only its first k entries
    count, negative ids (padding) are ignored and a repeated id counts once. `gt` is (nq, ≥ k)
    with -1 padding. The denominator is min(k, number of valid ground-truth ids): a filter
    that only m < k rows pass has recall 1.0 when all m are returned, not m / k.

    A query that no row passes (no valid ground-truth id) scores 1.0 if the system returned
    nothing and 0.0 if it returned anything (every such id violates the filter).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    gt = np.asarray(gt)
    if gt.ndim != 2 or gt.shape[0] != len(found):
        raise ValueError(f"ground truth {gt.shape} does not match {len(found)} answers")
    if gt.shape[1] < k:
        raise ValueError(f"ground truth holds {gt.shape[1]} neighbours, recall@{k} needs k")
    out = np.empty(len(found), dtype=np.float64)
    for i, answer in enumerate(found):
        truth = gt[i, :k]
        truth = truth[truth >= 0]
        got = np.asarray(answer, dtype=np.int64).ravel()[:k]
        got = got[got >= 0]
        if truth.size == 0:
            out[i] = 1.0 if got.size == 0 else 0.0
        else:
            out[i] = np.intersect1d(got, truth).size / truth.size
    return out


def mean_recall(found: Sequence[np.ndarray], gt: np.ndarray, k: int) -> float:
    """The mean of `recall_at_k` over the queries (nan for no queries)."""
    per_query = recall_at_k(found, gt, k)
    return float(per_query.mean()) if per_query.size else float("nan")
