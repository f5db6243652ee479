"""The C++ exact scan (sievedb_server._native_scan) against the numpy path and brute force.

`Collection.exact_among` uses `native_scan.topk_among` when the extension is built and
`index.exact.topk_among` (numpy) otherwise; both must give the same answers, best first, ties
by the smaller label. Query checks (`vector_checks.checked_queries`) likewise: the same
normalised queries and the same errors either way.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sievedb_server.core import vector_checks
from sievedb_server.core.types import Metric
from sievedb_server.errors import InvalidVector
from sievedb_server.index import exact, native_scan

pytestmark = pytest.mark.skipif(
    not native_scan.AVAILABLE, reason="sievedb_server._native_scan not built"
)

N, DIM = 3000, 37  # a dimension that is not a multiple of the 16 SIMD lanes


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    rng = np.random.default_rng(11)
    base = rng.standard_normal((N, DIM)).astype(np.float32)
    return base / np.linalg.norm(base, axis=1, keepdims=True)


def brute(data: np.ndarray, labels: np.ndarray, q: np.ndarray, k: int, l2: bool) -> np.ndarray:
    """Best k labels by float64 arithmetic, ties by label."""
    rows = data[labels].astype(np.float64)
    key = ((rows - q) ** 2).sum(axis=1) if l2 else -(rows @ q.astype(np.float64))
    return labels[np.lexsort((labels, key))][:k]


def test_ci_builds_the_scan() -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("only asserted in CI (CI=true), whose `make venv` builds the extension")
    assert native_scan.AVAILABLE


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 400),
    k=st.integers(1, 30),
    metric=st.sampled_from([Metric.COSINE, Metric.INNER_PRODUCT, Metric.L2]),
    queries=st.integers(1, 3),
)
def test_native_matches_numpy_and_brute_force(
    data: np.ndarray, seed: int, size: int, k: int, metric: Metric, queries: int
) -> None:
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.choice(N, size, replace=False)).astype(np.uint32)
    qs = rng.standard_normal((queries, DIM)).astype(np.float32)
    l2 = metric is Metric.L2
    got_labels, got_scores = native_scan.topk_among(data, labels, qs, k, l2=l2)
    want_labels, want_scores = exact.topk_among(data, labels, qs, k, metric)
    m = min(k, size)
    assert got_labels.shape == got_scores.shape == (queries, m)
    assert got_labels.dtype == np.int64 and got_scores.dtype == np.float32
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-4, atol=1e-4)
    for qi in range(queries):
        # Labels agree except where float rounding swaps a near-tie: compare by score.
        truth = brute(data, labels.astype(np.int64), qs[qi], m, l2)
        rows = data[got_labels[qi]].astype(np.float64)
        rescored = ((rows - qs[qi]) ** 2).sum(axis=1) if l2 else rows @ qs[qi]
        np.testing.assert_allclose(got_scores[qi], rescored, rtol=1e-4, atol=1e-4)
        assert set(got_labels[qi].tolist()) <= set(labels.tolist())
        if len(set(np.round(rescored, 4).tolist())) == m:  # no near-ties: exact agreement
            np.testing.assert_array_equal(got_labels[qi], truth)
        order = got_scores[qi] if l2 else -got_scores[qi]
        assert np.all(np.diff(order) >= 0), "best first"


def test_ties_go_to_the_smaller_label() -> None:
    data = np.ones((10, DIM), dtype=np.float32)  # every row scores the same
    labels = np.array([2, 3, 5, 7, 9], dtype=np.uint32)
    q = np.ones((1, DIM), dtype=np.float32)
    for l2 in (False, True):
        got, _ = native_scan.topk_among(data, labels, q, 3, l2=l2)
        assert got.tolist() == [[2, 3, 5]]


def test_k_beyond_the_allowed_set_returns_all_of_it(data: np.ndarray) -> None:
    labels = np.array([4, 8, 15], dtype=np.uint32)
    got, scores = native_scan.topk_among(data, labels, data[:1], 10, l2=False)
    assert sorted(got[0].tolist()) == [4, 8, 15] and scores.shape == (1, 3)
    empty, _ = native_scan.topk_among(data, np.empty(0, dtype=np.uint32), data[:1], 10, l2=False)
    assert empty.shape == (1, 0)


def test_bad_input_is_refused_not_read_out_of_bounds(data: np.ndarray) -> None:
    q = data[:1]
    with pytest.raises(IndexError, match="beyond"):
        native_scan.topk_among(data, np.array([0, N], dtype=np.uint32), q, 1, l2=False)
    with pytest.raises(ValueError, match="dimension"):
        native_scan.topk_among(data, np.array([0], dtype=np.uint32), q[:, :5], 1, l2=False)
    with pytest.raises(ValueError, match="float32"):
        native_scan.topk_among(data.astype(np.float64), np.array([0], dtype=np.uint32), q, 1,
                               l2=False)
    with pytest.raises(ValueError, match="C-contiguous"):
        native_scan.topk_among(data[:, ::2], np.array([0], dtype=np.uint32), q[:, ::2], 1,
                               l2=False)


@pytest.mark.parametrize("cosine", [True, False])
def test_query_checks_agree_with_the_numpy_fallback(
    monkeypatch: pytest.MonkeyPatch, cosine: bool
) -> None:
    rng = np.random.default_rng(5)
    good = rng.standard_normal((4, DIM)).astype(np.float32) * 1e3
    native = vector_checks.checked_queries(good, cosine=cosine)
    if cosine:
        np.testing.assert_allclose(np.linalg.norm(native, axis=1), 1.0, rtol=1e-6)
    bad_rows = {
        "contains NaN or Inf": np.array([np.nan] + [0.0] * (DIM - 1), np.float32),
        "all zeros": np.zeros(DIM, np.float32),
        "overflows": np.full(DIM, 3e19, np.float32),
        "underflows": np.full(DIM, 1e-30, np.float32),
    }
    errors = {}
    for label, row in bad_rows.items():
        arr = np.vstack([good, row[None, :]])
        try:
            vector_checks.checked_queries(arr, cosine=cosine)
        except InvalidVector as exc:
            errors[label] = str(exc)
    monkeypatch.setattr(native_scan, "AVAILABLE", False)
    np.testing.assert_allclose(vector_checks.checked_queries(good, cosine=cosine), native,
                               rtol=1e-6)
    for label, row in bad_rows.items():
        arr = np.vstack([good, row[None, :]])
        if label in errors:
            assert "queries row 4" in errors[label] and label in errors[label]
            with pytest.raises(InvalidVector) as caught:
                vector_checks.checked_queries(arr, cosine=cosine)
            assert str(caught.value) == errors[label]
        else:  # without cosine only NaN/Inf is refused
            assert label != "contains NaN or Inf" and not cosine
            vector_checks.checked_queries(arr, cosine=cosine)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bounds=st.tuples(st.integers(-5, 105), st.integers(-5, 105), st.booleans(), st.booleans()),
)
def test_column_among_agrees_with_numpy_and_brute_force(
    seed: int, bounds: tuple[int, int, bool, bool]
) -> None:
    """`NumericIndex.among` in C++ and in numpy: labels without a value (NaN) or past the
    column never match; both bounds inclusive or not."""
    from pyroaring import BitMap
    from sievedb_server.index.attributes import NumericIndex

    rng = np.random.default_rng(seed)
    labels = np.sort(rng.choice(3000, 800, replace=False))
    values = rng.integers(0, 100, len(labels)).astype(np.float64)
    num = NumericIndex(values, labels)
    num.set(int(labels[0]), None)  # a point that lost its value
    candidates = BitMap(rng.choice(4000, 500, replace=False).astype(np.uint32).tolist())
    lo, hi, lo_incl, hi_incl = float(bounds[0]), float(bounds[1]), bounds[2], bounds[3]
    value_of = dict(zip(labels.tolist(), values.tolist()))
    value_of.pop(int(labels[0]))
    truth = {
        lb for lb in candidates
        if lb in value_of
        and (value_of[lb] >= lo if lo_incl else value_of[lb] > lo)
        and (value_of[lb] <= hi if hi_incl else value_of[lb] < hi)
    }
    assert set(num.among(candidates, lo, lo_incl, hi, hi_incl)) == truth
    saved = native_scan.AVAILABLE
    try:
        native_scan.AVAILABLE = False
        assert set(num.among(candidates, lo, lo_incl, hi, hi_incl)) == truth
    finally:
        native_scan.AVAILABLE = saved


def test_numeric_ids_match_the_label_map_or_defer_to_it() -> None:
    from sievedb_server.index.idmap import LabelIds

    ids = LabelIds(64)
    ids.set([(label, 1000 + 7 * label) for label in range(40)] + [(40, "a-string-id")])
    ids.set([(41, 2**64 - 1)])  # the largest id a point can have
    live = np.zeros(64, dtype=bool)
    live[:42] = True
    live[5] = False
    labels = np.array([3, 0, 39, 41, 17], dtype=np.int64)
    got = native_scan.numeric_ids(labels, ids.num, ids.is_num, live)
    assert got == ids.lookup(labels) == [1021, 1000, 1273, 2**64 - 1, 1119]
    # Anything the fast path cannot answer goes back to the caller's general path.
    for odd in ([3, 40], [3, 5], [3, 63], [3, 64], [-1]):  # string id, dead, no id, past, < 0
        assert native_scan.numeric_ids(np.array(odd, np.int64), ids.num, ids.is_num, live) is None
    assert native_scan.numeric_ids(np.empty(0, np.int64), ids.num, ids.is_num, live) == []


# -- the SQ8 scan: codes first, float32 rescoring of the rows that can still make the top k --


def _awkward_rows(rng: np.random.Generator, n: int, dim: int, kind: str) -> np.ndarray:
    """Rows that stress the bound: repeats (exact ties), wild magnitudes, coarse grids,
    zeros and single spikes (one large coordinate, the rest small)."""
    x = rng.standard_normal((n, dim)).astype(np.float32)
    if kind == "repeats":
        x = x[rng.integers(0, max(1, n // 8), n)]
    elif kind == "magnitudes":
        x *= rng.lognormal(0.0, 4.0, (n, 1)).astype(np.float32)
    elif kind == "grid":
        x = np.round(x * 2) / 2
    elif kind == "spikes":
        x *= 1e-3
        x[np.arange(n), rng.integers(0, dim, n)] = rng.choice([-50.0, 50.0], n)
        x[rng.random(n) < 0.1] = 0.0
    elif kind == "unit":
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    return np.ascontiguousarray(x, dtype=np.float32)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 700),
    dim=st.sampled_from([1, 3, 16, 37, 128]),
    k=st.integers(1, 40),
    kind=st.sampled_from(["plain", "repeats", "magnitudes", "grid", "spikes", "unit"]),
    l2=st.booleans(),
)
def test_sq8_scan_returns_exactly_the_plain_scans_answer(
    seed: int, n: int, dim: int, k: int, kind: str, l2: bool
) -> None:
    from sievedb_server.index.vectors import sq8_encode

    rng = np.random.default_rng(seed)
    data = _awkward_rows(rng, n, dim, kind)
    codes, meta = sq8_encode(data)
    labels = np.sort(rng.choice(n, int(rng.integers(1, n + 1)), replace=False)).astype(np.uint32)
    qs = rng.standard_normal((3, dim)).astype(np.float32)
    qs[0] = data[labels[0]]  # a query on a stored row: many near-equal scores around it
    want = native_scan.topk_among(data, labels, qs, k, l2=l2)
    got_labels, got_scores, rescored = native_scan.topk_among_sq8(
        data, codes, meta, labels, qs, k, l2=l2
    )
    # Identical, not close: same rows, same float32 scores, same order and tie-breaks.
    np.testing.assert_array_equal(got_labels, want[0])
    np.testing.assert_array_equal(got_scores, want[1])
    assert min(k, len(labels)) * len(qs) <= rescored <= len(labels) * len(qs)


def test_sq8_codes_bound_the_error_they_claim() -> None:
    from sievedb_server.index.vectors import sq8_encode

    rng = np.random.default_rng(5)
    data = _awkward_rows(rng, 2000, 64, "magnitudes")
    codes, meta = sq8_encode(data)
    approx = codes.astype(np.float64) * meta[:, :1].astype(np.float64)
    resid = np.linalg.norm(data.astype(np.float64) - approx, axis=1)
    assert np.all(resid <= meta[:, 1]) and np.all(np.abs(codes) <= 127)
    assert np.all(np.linalg.norm(approx, axis=1) <= meta[:, 2])  # ‖x̂‖, rounded up
    zeros = sq8_encode(np.zeros((2, 8), dtype=np.float32))
    assert not zeros[0].any() and not zeros[1].any()  # no scale, no codes, no error


def test_sq8_scan_spares_most_float32_rows_on_clustered_data() -> None:
    """The point of the codes: on embedding-like data only a few rows are rescored."""
    from sievedb_server.index.vectors import sq8_encode

    rng = np.random.default_rng(9)
    centres = rng.standard_normal((20, 128))
    data = (centres[rng.integers(0, 20, 5000)] + 0.5 * rng.standard_normal((5000, 128)))
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    codes, meta = sq8_encode(data)
    labels = np.arange(0, 5000, 3, dtype=np.uint32)
    q = data[7:8]
    _, _, rescored = native_scan.topk_among_sq8(data, codes, meta, labels, q, 10, l2=False)
    assert rescored < len(labels) // 4


def test_sq8_scan_refuses_codes_that_do_not_cover_the_rows(data: np.ndarray) -> None:
    from sievedb_server.index.vectors import sq8_encode

    codes, meta = sq8_encode(data)
    labels = np.array([0, 1], dtype=np.uint32)
    with pytest.raises(ValueError, match="cover"):
        native_scan.topk_among_sq8(data, codes[:10], meta[:10], labels, data[:1], 1, l2=False)
    with pytest.raises(ValueError, match="int8"):
        native_scan.topk_among_sq8(data, codes.astype(np.int16), meta, labels, data[:1], 1,
                                   l2=False)
    with pytest.raises(IndexError, match="beyond"):
        native_scan.topk_among_sq8(data, codes, meta, np.array([N], dtype=np.uint32),
                                   data[:1], 1, l2=False)
    got, _, _ = native_scan.topk_among_sq8(data, codes, meta, np.empty(0, dtype=np.uint32),
                                           data[:1], 5, l2=False)
    assert got.shape == (1, 0)
