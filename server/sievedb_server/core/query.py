"""Query execution for one collection: filter → allowed set → planned k-NN → hits.

The caller (`Collection.search_batch`) holds the collection's index read lock. Each query
gets an explicit `Plan` (strategy, |allowed|, ef, time per stage) from `filters.planner`;
whatever the strategy, a query returns min(k, |allowed|) hits that all pass the filter: a
graph strategy that comes back short falls back to the exact scan of the allowed set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from pyroaring import BitMap

from sievedb_server.core.types import Metric, Plan, PlanStage, SearchParams
from sievedb_server.filters.bitmaps import (
    BitmapContext,
    ColumnForm,
    allowed_superset,
    column_form,
    conjunction_labels,
)
from sievedb_server.filters.model import Filter
from sievedb_server.filters.planner import choose, fallback_after_short_postfilter
from sievedb_server.index import native_filter
from sievedb_server.index.attributes import bitmap_of
from sievedb_server.index.column_filter import ColumnFilter

if TYPE_CHECKING:
    from sievedb_server.core.collection import Collection

__all__ = ["AllowedSet", "QueryOutcome", "resolve_filter", "run_query"]

# A superset larger than this is not re-checked up front for a search; the graph traversal
# evaluates the filter per visited point instead (Qdrant does the same for unindexed fields).
RECHECK_UPFRONT_MAX = 50_000


class AllowedSet:
    """The labels a filter allows: exact, or a superset with a per-label check.

    A filter that is one condition on one indexed field (a range, or a match on a
    single-valued field) is kept as a column test (`column`, index/column_filter.py) with its
    exact size, and its bitmap is built only if a strategy asks for it: the filtered traversal
    and the post-filter test the column per candidate, so a wide filter costs nothing up front.
    """

    __slots__ = ("_bitmap", "_build", "_labels", "check", "column", "count", "exact", "nanos")

    def __init__(
        self,
        bitmap: BitMap | None,
        exact: bool,
        check: Callable[[int], bool] | None = None,
        nanos: int = 0,
        *,
        form: ColumnForm | None = None,
        labels: np.ndarray | None = None,
    ) -> None:
        self._bitmap = bitmap
        self._labels = labels  # sorted uint32, when they came that way (exact, no check)
        self.exact = exact
        self.check = check
        self.nanos = nanos
        self.column: ColumnFilter | None = None if form is None else form.test
        self._build = None if form is None else form.build
        if bitmap is not None:
            self.count = len(bitmap)
        elif labels is not None:
            self.count = len(labels)
        else:
            assert form is not None
            self.count = form.count

    @property
    def bitmap(self) -> BitMap:
        """The allowed labels (built on first use, for a column test or a label array)."""
        if self._bitmap is None:
            if self._labels is not None:
                self._bitmap = bitmap_of(self._labels)
            else:
                assert self._build is not None
                self._bitmap = self._build()
        return self._bitmap

    @bitmap.setter
    def bitmap(self, value: BitMap) -> None:
        self._bitmap, self._labels, self.count = value, None, len(value)

    def sorted_labels(self) -> np.ndarray:
        """The allowed labels as a sorted uint32 array (the check, if any, not applied)."""
        if self._labels is not None:
            return self._labels
        return np.frombuffer(self.bitmap.to_array(), dtype=np.uint32)

    def contains(self, labels: np.ndarray) -> np.ndarray:
        """A boolean mask: which of `labels` (int64) are allowed (the check included)."""
        if self._bitmap is None and self.column is not None:
            return self.column.mask(labels)
        bm, check = self.bitmap, self.check
        return np.fromiter(
            (lb in bm and (check is None or check(lb)) for lb in labels.tolist()),
            dtype=bool,
            count=len(labels),
        )

    def __len__(self) -> int:
        return self.count


@dataclass
class QueryOutcome:
    labels: np.ndarray
    scores: np.ndarray
    plan: Plan
    stages: list[PlanStage] = field(default_factory=list)


def resolve_filter(coll: Collection, flt: Filter, *, force_exact: bool) -> AllowedSet:
    """Labels allowed by `flt`; exact unless it is big and `force_exact` is False."""
    t0 = time.perf_counter_ns()
    ctx = BitmapContext(coll.attr_index, coll.live_bitmap, coll.labels_of_ids)
    if coll.planner.column_tests and (form := column_form(flt, ctx)) is not None:
        # Exact; a graph strategy will test the column, and the bitmap is built on demand.
        if form.count * coll.dim > coll.planner.exact_budget:
            return AllowedSet(None, True, None, time.perf_counter_ns() - t0, form=form)
        # Small enough to be scanned exactly (the planner's first test): the scan needs labels.
        if form.sorted_labels is not None:
            return AllowedSet(None, True, None, time.perf_counter_ns() - t0,
                              labels=form.sorted_labels())
        return AllowedSet(form.build(), True, None, time.perf_counter_ns() - t0)
    if (labels := conjunction_labels(flt, ctx)) is not None:
        if len(labels) * coll.dim <= coll.planner.exact_budget:  # for the exact scan, as is
            return AllowedSet(None, True, None, time.perf_counter_ns() - t0, labels=labels)
        return AllowedSet(bitmap_of(labels), True, None, time.perf_counter_ns() - t0)
    bm, exact = allowed_superset(flt, ctx)
    check = None
    if not exact:
        checker = coll.make_checker(flt)
        if force_exact or len(bm) <= RECHECK_UPFRONT_MAX:
            bm = BitMap(label for label in bm if checker(label))
            exact = True
        else:
            check = checker
    return AllowedSet(bm, exact, check, time.perf_counter_ns() - t0)


def run_query(
    coll: Collection, query: np.ndarray, params: SearchParams, allowed: AllowedSet | None
) -> QueryOutcome:
    total = coll.live_count
    ef = params.ef or coll.spec.hnsw.ef_search
    n_allowed = total if allowed is None else len(allowed)
    k = min(params.k, n_allowed)
    choice = choose(
        allowed=n_allowed,
        total=total,
        k=k,
        ef=ef,
        dim=coll.dim,
        exact_requested=params.exact,
        filtered=allowed is not None,
        full_scan_threshold=coll.spec.hnsw.full_scan_threshold,
        config=coll.planner,
    )
    stages = [PlanStage("filter", allowed.nanos)] if allowed is not None else []
    t0 = time.perf_counter_ns()
    strategy = choice.strategy
    q = query[None, :]
    result: tuple[np.ndarray, np.ndarray] | None = None
    detail = ""
    if strategy == "empty":
        result = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
    elif strategy == "hnsw":
        result = _graph(coll, q, k, choice.ef)
    elif strategy == "hnsw_postfilter":
        assert allowed is not None
        result, detail = _postfilter(coll, q, k, choice.fetch, choice.ef, allowed)
        if result is None:
            strategy = "hnsw_postfilter+" + fallback_after_short_postfilter(
                n_allowed, coll.dim, coll.planner
            )
    if strategy.endswith("hnsw_filtered"):
        assert allowed is not None
        # The filtered traversal uses the caller's ef (a post-filter probe may have used more).
        result = _graph(coll, q, k, max(ef, k), allowed)
        native = native_filter.NATIVE and allowed.check is None
        how = ("C++ " if native else "Python ") + (
            "label filter" if allowed.column is None else "column filter"
        )
        detail = (detail + "; " if detail else "") + f"filtered traversal: {how}"
    if result is None or len(result[0]) < k:
        if not strategy.endswith("exact"):
            detail = (detail + "; " if detail else "") + f"{strategy} came back short"
            strategy += "+exact"
        result = _exact(coll, q, k, allowed)
    stages.append(PlanStage("search", time.perf_counter_ns() - t0))
    plan = Plan(
        strategy=strategy,
        allowed=n_allowed,
        total=total,
        ef=choice.ef,
        stages=stages,
        detail=detail if allowed is None or allowed.exact else
        (detail + "; " if detail else "") + "|allowed| is an upper bound (unindexed conditions)",
    )
    return QueryOutcome(result[0], result[1], plan)


def _to_scores(coll: Collection, dists: np.ndarray) -> np.ndarray:
    return dists if coll.metric is Metric.L2 else 1.0 - dists


def _graph(
    coll: Collection, q: np.ndarray, k: int, ef: int, allowed: AllowedSet | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """HNSW search; with `allowed`, only those labels (the C++ filter when available, see
    index/native_filter.py: the column test of a one-condition filter, else the labels'
    bits, plus the per-label check of a superset)."""
    try:
        if allowed is None:
            labels, dists = coll.graph.search(q, k, ef)
        elif allowed.column is not None:  # exact, no check
            labels, dists = coll.graph.search(q, k, ef, column_filter=allowed.column)
        else:
            labels, dists = coll.graph.search(
                q, k, ef, filter_fn=allowed.check, allowed=allowed.bitmap
            )
    except RuntimeError:
        return None  # hnswlib found fewer than k (disconnected by deletes or the filter)
    return labels[0], _to_scores(coll, dists[0])


def _postfilter(
    coll: Collection, q: np.ndarray, k: int, fetch: int, ef: int, allowed: AllowedSet
) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """Unfiltered search for `fetch` candidates, keep the allowed ones; None when short."""
    found = _graph(coll, q, fetch, ef)
    if found is None:
        return None, f"post-filter: graph returned fewer than {fetch}"
    labels, scores = found
    keep = allowed.contains(labels)
    if keep.sum() < k:
        return None, f"post-filter: {int(keep.sum())} of {fetch} candidates allowed"
    idx = np.flatnonzero(keep)[:k]
    return (labels[idx], scores[idx]), f"post-filter: fetched {fetch} at ef {ef}"


def _exact(
    coll: Collection, q: np.ndarray, k: int, allowed: AllowedSet | None
) -> tuple[np.ndarray, np.ndarray]:
    if allowed is None:
        labels = coll.live_labels()
    else:
        if not allowed.exact and allowed.check is not None:
            check = allowed.check
            allowed.bitmap = BitMap(lb for lb in allowed.bitmap if check(lb))
            allowed.exact, allowed.check = True, None
        labels = allowed.sorted_labels()
    if labels.size == 0 or k == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    found, scores = coll.exact_among(q, labels, k)
    return found[0], scores[0]
