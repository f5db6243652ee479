"""Unit tests of the numeric range index (bucketed bitmaps + tail) and sortable keys."""

from __future__ import annotations

import numpy as np
import pytest
from pyroaring import BitMap
from hypothesis import given
from hypothesis import strategies as st

from sievedb_server.index.attributes import NumericIndex, _sortable, _unsortable, bitmap_of


@given(st.lists(st.floats(allow_nan=False), min_size=2, max_size=20))
def test_sortable_keys_order_like_floats(xs: list[float]) -> None:
    assert sorted(xs) == [_unsortable(k) for k in sorted(_sortable(x) for x in xs)]
    assert all(_unsortable(_sortable(x)) == x for x in xs)


@pytest.mark.parametrize("n", [0, 10, 5_000, 70_000])
def test_numeric_range_matches_brute_force(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.integers(0, 500, size=n).astype(np.float64)
    labels = rng.permutation(n * 2)[:n].astype(np.int64)
    index = NumericIndex(values, labels)
    truth = dict(zip(labels.tolist(), values.tolist()))
    _check_ranges(index, truth, rng, 10)  # the sorted base alone
    # Updates and deletions go through the stale set and the tail until a merge; new labels
    # beyond the label column's end make it grow.
    fresh = [int(n * 2 + i * 997) for i in range(3)]
    changed = rng.choice(labels, size=min(n, 300), replace=False).tolist() + fresh
    for i, label in enumerate(changed + changed[: len(changed) // 3]):  # some change twice
        new = None if rng.random() < 0.3 else float(rng.integers(0, 500))
        index.set(label, new)
        if new is None:
            truth.pop(label, None)
        else:
            truth[label] = new
        if i % 50 == 0:  # counts between changes: their cached sorted tail must not go stale
            assert index.count(-np.inf, True, np.inf, True) == len(truth)
    _check_ranges(index, truth, rng, 40)  # the base with stale entries, and the tail
    assert index.count(-np.inf, True, np.inf, True) == len(truth)


def _check_ranges(
    index: NumericIndex, truth: dict[int, float], rng: np.random.Generator, times: int
) -> None:
    n = len(index.labels)
    fresh = [int(n * 2 + i * 997) for i in range(3)]
    for _ in range(times):
        lo, hi = sorted(rng.integers(-10, 510, size=2).tolist())
        lo_incl, hi_incl = bool(rng.integers(2)), bool(rng.integers(2))
        want = {
            lb for lb, v in truth.items()
            if (v > lo or (lo_incl and v == lo)) and (v < hi or (hi_incl and v == hi))
        }
        assert set(index.range(lo, lo_incl, hi, hi_incl)) == want
        # The exact scan's form: sorted uint32 labels, with or without the caller's span.
        span = index.span(lo, lo_incl, hi, hi_incl)
        for got in (index.sorted_labels(lo, lo_incl, hi, hi_incl),
                    index.sorted_labels(lo, lo_incl, hi, hi_incl, span)):
            assert got.dtype == np.uint32 and got.tolist() == sorted(want)
        assert set(index.range(lo, lo_incl, hi, hi_incl, span)) == want
        assert index.count(lo, lo_incl, hi, hi_incl, span) == len(want)
        # The label column answers the same range for any candidates, including labels it
        # has never held; the estimate never undercounts.
        candidates = BitMap(rng.choice(n * 2 + 10, size=min(n, 500), replace=False).tolist())
        candidates |= BitMap(fresh)
        assert set(index.among(candidates, lo, lo_incl, hi, hi_incl)) == want & set(candidates)
        assert index.estimate(lo, lo_incl, hi, hi_incl) >= len(want)
        assert index.count(lo, lo_incl, hi, hi_incl) == len(want)


def test_bitmap_of_any_order() -> None:
    assert list(bitmap_of(np.array([5, 1, 3, 1]))) == [1, 3, 5]
    assert len(bitmap_of(np.array([], dtype=np.int64))) == 0
