"""Filter → set of labels, computed from the attribute indexes (bitmap algebra).

`allowed_superset(filter, ctx)` returns `(bitmap, exact)`. When `exact` is True the bitmap is
precisely the live labels that `reference.matches` accepts; otherwise it is a superset (some
condition reads an unindexed field, or has no index form) and the caller re-checks candidates
with the reference evaluator. Property tests compare both against the reference evaluator.

Per condition on an indexed field (schema type in brackets):

| condition        | index form                                                            |
|------------------|-----------------------------------------------------------------------|
| match / any      | posting bitmaps [keyword, keyword list, integer, boolean]; datetime via range |
| match except     | present − ∪ postings [keyword, integer, boolean]; list fields: superset |
| range            | numeric index [integer, float, datetime]; type disagreement → empty   |
| is_empty         | live − present                                                        |
| is_null          | null bitmap                                                           |
| values_count     | superset (re-checked)                                                 |
| has_id           | id → label lookups                                                    |
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import numpy as np
from pyroaring import BitMap

from sievedb_server.core.types import FieldType, PointId
from sievedb_server.filters.model import (
    Condition,
    Filter,
    HasId,
    IsEmpty,
    IsNull,
    Match,
    MatchAny,
    MatchExcept,
    Range,
    ValuesCount,
    value_key,
)
from sievedb_server.index import native_scan
from sievedb_server.index.attributes import (
    NUMERIC_TYPES,
    POSTING_TYPES,
    AttributeIndex,
    NumericIndex,
    bitmap_of,
    number_of,
)
from sievedb_server.index.column_filter import Bounds, ColumnFilter, ColumnRange

__all__ = [
    "BitmapContext", "ColumnForm", "allowed_superset", "column_form", "conjunction_labels",
]


@dataclass
class BitmapContext:
    attrs: AttributeIndex
    live: BitMap
    labels_of: Callable[[frozenset[PointId]], BitMap]


def allowed_superset(flt: Filter, ctx: BitmapContext) -> tuple[BitMap, bool]:
    """The allowed labels (or a superset) and whether they are exact.

    The bitmap may be one the indexes hold (a posting list, the live set): callers read it
    and never change it in place (writers change those under the collection's write lock).
    """
    # Every bitmap the indexes hand out holds live labels only (postings, numeric entries and
    # id lookups are removed in the same write as the point), so no final `& live` is needed;
    # the postings state machine test checks that invariant against LMDB.
    return _filter(flt, ctx)


class ColumnForm(NamedTuple):
    """A filter as a column test (see index/column_filter.py): the test, the exact number of
    labels passing it, how to build their bitmap should a strategy need it and, where that is
    cheaper than the bitmap, their sorted uint32 array (for the exact scan)."""

    test: ColumnFilter
    count: int
    build: Callable[[], BitMap]
    sorted_labels: Callable[[], np.ndarray] | None = None


def column_form(flt: Filter, ctx: BitmapContext) -> ColumnForm | None:
    """`flt` as a column test when it is one range on an indexed numeric field (possibly
    written as several, `year >= 2000 and year < 2020`) or one match / match any / match except
    on an indexed single-valued posting field (keyword, integer, boolean); else None."""
    if not flt.must or flt.should or flt.must_not:
        return None
    numeric = _single_range(flt.must, ctx)
    if numeric is not None:
        num, bounds = numeric
        span = num.span(*bounds)  # once, for the count and whichever form is built
        return ColumnForm(ColumnRange(num.column, bounds), num.count(*bounds, span),
                          lambda: num.range(*bounds, span),
                          lambda: num.sorted_labels(*bounds, span))
    cond = flt.must[0]
    if len(flt.must) != 1 or not isinstance(cond, Match | MatchAny | MatchExcept):
        return None
    column = ctx.attrs.codes.get(cond.key) if cond.key is not None else None
    if column is None:
        return None
    idx, fname = ctx.attrs, cond.key
    values = (cond.value,) if isinstance(cond, Match) else cond.values
    vkeys = {value_key(v) for v in values}
    matched = sum(len(idx.posting(fname, vk)) for vk in vkeys)  # disjoint: single-valued
    if isinstance(cond, MatchExcept):
        test = column.filter_of(vk for vk in column.code_of if vk not in vkeys)
        count = len(idx.present(fname)) - matched
    else:
        test, count = column.filter_of(vkeys), matched
    if test is None:
        return None
    return ColumnForm(test, count, lambda: _condition(cond, ctx)[0])


def conjunction_labels(flt: Filter, ctx: BitmapContext) -> np.ndarray | None:
    """The labels `flt` allows, as a sorted uint32 array, when it is a conjunction of matches
    on posting fields and ranges on indexed numeric fields whose matches leave few candidates
    (`_reads_column`, as in `_narrow_by_ranges`): the ranges are read from their columns for
    those candidates and no bitmap is built, which is what the exact scan of a small set wants.
    None otherwise; `allowed_superset` answers every filter."""
    if len(flt.must) < 2 or flt.should or flt.must_not:
        return None
    candidates: BitMap | None = None
    ranges: list[tuple[NumericIndex, Bounds]] = []
    for cond in flt.must:
        indexed = _indexed_range(cond, ctx)
        if indexed is not None:
            ranges.append(indexed)
            continue
        spec = ctx.attrs.fields.get(cond.key) if isinstance(cond, Match | MatchAny) else None
        if spec is None or spec.type not in POSTING_TYPES:
            return None
        bm, _ = _condition(cond, ctx)  # postings are exact
        candidates = bm if candidates is None else candidates & bm
    if candidates is None or not ranges:
        return None
    if not _reads_column(len(candidates), min(num.estimate(*b) for num, b in ranges)):
        return None
    labels = np.frombuffer(candidates.to_array(), dtype=np.uint32)
    for num, bounds in ranges:
        labels = num.among_labels(labels, *bounds)
    return labels


def _single_range(
    must: tuple[Condition, ...], ctx: BitmapContext
) -> tuple[NumericIndex, Bounds] | None:
    """(numeric index, bounds) when every condition of `must` is a range on one indexed
    numeric field: their intersection."""
    first = _indexed_range(must[0], ctx)
    if first is None:
        return None
    num, (lo, lo_incl, hi, hi_incl) = first
    for cond in must[1:]:
        other = _indexed_range(cond, ctx)
        if other is None or other[0] is not num:
            return None
        olo, olo_incl, ohi, ohi_incl = other[1]
        if olo > lo or (olo == lo and not olo_incl):
            lo, lo_incl = olo, olo_incl
        if ohi < hi or (ohi == hi and not ohi_incl):
            hi, hi_incl = ohi, ohi_incl
    return num, (lo, lo_incl, hi, hi_incl)


def _filter(flt: Filter, ctx: BitmapContext) -> tuple[BitMap, bool]:
    result: BitMap | None = None
    exact = True
    ranges: list[tuple[NumericIndex, Bounds]] = []
    for cond in flt.must:
        indexed = _indexed_range(cond, ctx)
        if indexed is not None:
            ranges.append(indexed)  # after the other conditions: they may leave few candidates
            continue
        bm, ok = _condition(cond, ctx)
        result = bm if result is None else result & bm
        exact &= ok
    if flt.should:
        parts = [_condition(c, ctx) for c in flt.should]
        need = max(flt.min_should, 1)
        if need == 1:
            should = BitMap.union(*(bm for bm, _ in parts)) if parts else BitMap()
        elif all(ok for _, ok in parts):
            counts = np.bincount(
                np.concatenate([np.asarray(bm.to_array(), dtype=np.int64) for bm, _ in parts])
                if parts else np.empty(0, dtype=np.int64)
            )
            should = bitmap_of(np.flatnonzero(counts >= need))
        else:
            should = BitMap.union(*(bm for bm, _ in parts))
            exact = False
        exact &= all(ok for _, ok in parts)
        result = should if result is None else result & should
    result = _narrow_by_ranges(result, ranges)
    if result is None:
        result = ctx.live
    for cond in flt.must_not:
        bm, ok = _condition(cond, ctx)
        if ok:
            result = result - bm
        else:
            exact = False  # cannot subtract a superset; keep the candidates and re-check
    return result, exact


def _condition(cond: Condition, ctx: BitmapContext) -> tuple[BitMap, bool]:
    if isinstance(cond, Filter):
        bm, ok = _filter(cond, ctx)
        return bm, ok
    if isinstance(cond, HasId):
        return ctx.labels_of(cond.ids), True
    spec = ctx.attrs.fields.get(cond.key) if cond.key is not None else None
    if spec is None:
        return ctx.live, False  # unindexed field: evaluate per point
    idx = ctx.attrs
    if isinstance(cond, IsNull):
        return idx.nulls(spec.name), True
    if isinstance(cond, IsEmpty):
        return ctx.live - idx.present(spec.name), True
    if isinstance(cond, Match | MatchAny):
        values = (cond.value,) if isinstance(cond, Match) else cond.values
        if spec.type in POSTING_TYPES:
            if len(values) == 1:  # the posting itself: results are never mutated in place
                return idx.posting(spec.name, value_key(values[0])), True
            postings = (idx.posting(spec.name, value_key(v)) for v in values)
            return BitMap.union(BitMap(), *postings), True
        if spec.type is FieldType.DATETIME:
            return _datetimes_equal(spec.name, values, idx), True
        return BitMap(), True  # floats are never matched for equality
    if isinstance(cond, MatchExcept):
        if spec.type in POSTING_TYPES and spec.type is not FieldType.KEYWORD_LIST:
            excluded = BitMap.union(
                BitMap(), *(idx.posting(spec.name, value_key(v)) for v in cond.values)
            )
            return idx.present(spec.name) - excluded, True
        return idx.present(spec.name), False
    if isinstance(cond, Range):
        # Not an indexed range: a keyword/bool never lies in a range, datetime ranges compare
        # only datetimes, and a NaN bound matches nothing.
        indexed = _indexed_range(cond, ctx)
        return (BitMap() if indexed is None else indexed[0].range(*indexed[1])), True
    if isinstance(cond, ValuesCount):
        return ctx.live, False
    raise TypeError(f"unknown condition {type(cond).__name__}")


# A range in a conjunction is checked against the candidates the other conditions left, by
# reading their values from the label-ordered column (`NumericIndex.among`), instead of
# building the range's bitmap and intersecting (~20–45 µs for a 10–90 % range whatever the
# candidates), when there are at most this many candidates. In C++ the column read costs
# ~3–6 µs + 2–5 ns per candidate, break-even 5,000–10,000 candidates at range sizes 90–10 %
# (`python -m benchmarks.bench_range_index`, results/range_index.md); the numpy fallback
# ~8 µs + ~10 ns per candidate, break-even 2,000–3,000 (a run of it at 14c66a2).
AMONG_MAX_CANDIDATES = 4_000 if native_scan.AVAILABLE else 2_000
# A small range is cheap to build, so reading the candidates pays only while they are few
# next to it: the column read wins up to ~1,500 candidates against a 0.1 % range (~100
# labels) and up to 5,000–10,000 against a 1 % one (~1,000; same benchmark): read them when
# there are at most AMONG_BASE + AMONG_PER_LABEL · |range| (and AMONG_MAX_CANDIDATES).
AMONG_BASE, AMONG_PER_LABEL = 1_000, 5


def _reads_column(candidates: int, range_size: int) -> bool:
    """Whether a range is read from its column for `candidates` labels rather than built."""
    return candidates <= min(AMONG_MAX_CANDIDATES, AMONG_BASE + AMONG_PER_LABEL * range_size)


def _indexed_range(cond: Condition, ctx: BitmapContext) -> tuple[NumericIndex, Bounds] | None:
    """(numeric index, bounds) when `cond` is a satisfiable range on an indexed numeric field
    (of its kind: datetime bounds for a datetime field, numbers for the others); else None."""
    if not isinstance(cond, Range) or cond.key is None:
        return None
    spec = ctx.attrs.fields.get(cond.key)
    if spec is None or spec.type not in NUMERIC_TYPES:
        return None
    if cond.is_datetime != (spec.type is FieldType.DATETIME):
        return None
    bounds = _bounds(cond)
    return None if bounds is None else (ctx.attrs.numeric[spec.name], bounds)


def _narrow_by_ranges(
    result: BitMap | None, ranges: list[tuple[NumericIndex, Bounds]]
) -> BitMap | None:
    """Intersect `result` (None: no condition yet) with indexed ranges, smallest first."""
    if not ranges:
        return result
    if len(ranges) > 1:
        ranges = sorted(ranges, key=lambda r: r[0].estimate(*r[1]))
    for num, bounds in ranges:
        if result is None:
            result = num.range(*bounds)
        elif _reads_column(len(result), num.estimate(*bounds)):
            result = num.among(result, *bounds)
        else:
            result = result & num.range(*bounds)
    return result


def _bounds(cond: Range) -> Bounds | None:
    """The tightest (lo, lo_incl, hi, hi_incl) of a range; None if it matches nothing."""
    lo, lo_incl, hi, hi_incl = -math.inf, True, math.inf, True
    # (bound, is it a lower bound, inclusive); every search with a range comes through here.
    for bound, lower, incl in ((cond.gt, True, False), (cond.gte, True, True),
                               (cond.lt, False, False), (cond.lte, False, True)):
        if bound is None:
            continue
        value = number_of(bound)
        if value is None or math.isnan(value):  # a NaN bound matches nothing
            return None
        if lower:
            if value > lo or (value == lo and not incl):
                lo, lo_incl = value, incl
        elif value < hi or (value == hi and not incl):
            hi, hi_incl = value, incl
    return lo, lo_incl, hi, hi_incl


def _datetimes_equal(fname: str, values: tuple[object, ...], idx: AttributeIndex) -> BitMap:
    out = BitMap()
    for v in values:
        if isinstance(v, datetime):
            us = number_of(v)
            assert us is not None
            out |= idx.numeric[fname].range(us, True, us, True)
    return out
