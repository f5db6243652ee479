"""The C++ label filter (sievedb_server._native_filter) against the Python callback.

`HnswIndex.search(allowed=bitmap)` uses the C++ filter when native_filter.NATIVE (hnswlib calls
it without the GIL) and `bitmap.__contains__` otherwise; both must give the same answers.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap
from sievedb_server.core.types import HnswParams, Metric
from sievedb_server.index import native_filter
from sievedb_server.index.attributes import bitmap_of
from sievedb_server.index.column_filter import ColumnCodes, ColumnRange
from sievedb_server.index.hnsw import HnswIndex

N, DIM, K, EF = 2000, 16, 5, 64

needs_ext = pytest.mark.skipif(
    native_filter._ext is None, reason=f"C++ filter not built: {native_filter.REASON}"
)
needs_native = pytest.mark.skipif(
    not native_filter.NATIVE, reason=f"no GIL-free filter path: {native_filter.REASON}"
)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> HnswIndex:
    folder: Path = tmp_path_factory.mktemp("native")
    ix = HnswIndex(folder, DIM, Metric.L2, HnswParams(m=12, ef_construction=64, ef_search=EF))
    ix.init_empty(N)
    vectors = np.random.default_rng(7).standard_normal((N, DIM)).astype(np.float32)
    ix.add(np.arange(N, dtype=np.int64), vectors, num_threads=1)
    return ix


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return np.random.default_rng(8).standard_normal((24, DIM)).astype(np.float32)


def random_bitmap(selectivity: float, seed: int) -> BitMap:
    keep = np.flatnonzero(np.random.default_rng(seed).random(N) < selectivity)
    return BitMap(keep.astype(np.uint32))


def test_ci_builds_the_native_path() -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("only asserted in CI (CI=true), whose `make venv` builds the extension")
    assert native_filter.NATIVE, native_filter.REASON


@pytest.mark.parametrize("selectivity", [0.5, 0.1, 0.02])
def test_allowed_matches_python_callback(
    index: HnswIndex, queries: np.ndarray, selectivity: float
) -> None:
    bm = random_bitmap(selectivity, seed=int(selectivity * 1000))
    for q in queries:
        want = index.search(q[None, :], K, EF, filter_fn=bm.__contains__)
        got = index.search(q[None, :], K, EF, allowed=bm)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
        assert set(got[0][0].tolist()) <= set(bm)
    # A batch on one thread takes the same path per row.
    want = index.search(queries, K, EF, filter_fn=bm.__contains__)
    got = index.search(queries, K, EF, allowed=bm)
    np.testing.assert_array_equal(got[0], want[0])


@needs_native
def test_native_path_is_taken_without_the_gil(index: HnswIndex, queries: np.ndarray) -> None:
    ext = native_filter._ext
    ext.reset_stats()
    index.search(queries[:3], K, EF, allowed=random_bitmap(0.3, seed=1))
    assert ext.calls() > 0
    assert not ext.gil_seen()


def test_fallback_when_not_native(
    index: HnswIndex, queries: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    bm = random_bitmap(0.1, seed=3)
    before = index.search(queries, K, EF, allowed=bm)
    monkeypatch.setattr(native_filter, "NATIVE", False)
    if native_filter._ext is not None:
        native_filter._ext.reset_stats()
    after = index.search(queries, K, EF, allowed=bm)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_allclose(after[1], before[1], rtol=1e-6)
    if native_filter._ext is not None:
        assert native_filter._ext.calls() == 0  # the C++ filter was not used


def test_fan_out_to_hnswlib_threads_uses_the_python_callback(
    index: HnswIndex, queries: np.ndarray
) -> None:
    # 24 rows > 4 * 2 threads: hnswlib's worker threads would see no installed bits.
    assert not native_filter.runs_inline(len(queries), 2)
    bm = random_bitmap(0.2, seed=4)
    want = index.search(queries, K, EF, filter_fn=bm.__contains__, num_threads=1)
    got = index.search(queries, K, EF, allowed=bm, num_threads=2)
    np.testing.assert_array_equal(got[0], want[0])


def test_allowed_and_filter_fn_combine(index: HnswIndex, queries: np.ndarray) -> None:
    bm = random_bitmap(0.5, seed=5)
    even = lambda label: label % 2 == 0  # noqa: E731
    both = BitMap(lb for lb in bm if lb % 2 == 0)
    got = index.search(queries, K, EF, filter_fn=even, allowed=bm)
    want = index.search(queries, K, EF, filter_fn=both.__contains__)
    np.testing.assert_array_equal(got[0], want[0])


@needs_ext
def test_labels_beyond_the_bits_are_not_allowed(index: HnswIndex, queries: np.ndarray) -> None:
    with native_filter.installed(np.array([1, 3], dtype=np.uint32)) as fn:
        assert [fn(label) for label in range(6)] == [False, True, False, True, False, False]
        assert not fn(65536) and not fn(2**40)  # past the installed words
    # Bits shorter than the index (one 64-label word): nothing past their end comes back.
    with native_filter.installed(np.array([2**64 - 1], dtype=np.uint64)) as fn:
        labels, _ = index.index.knn_query(queries, k=K, num_threads=1, filter=fn)
    assert labels.max() < 64


def _unpacked(bits: np.ndarray) -> list[int]:
    return np.flatnonzero(np.unpackbits(bits.view(np.uint8), bitorder="little")).tolist()


@needs_ext
@pytest.mark.parametrize("run_optimize", [False, True])
def test_membership_bits_from_any_roaring_layout(run_optimize: bool) -> None:
    """Array, bitset and run containers, the offset header (>= 4 containers) or not."""
    rng = np.random.default_rng(11)
    cases = [BitMap(), BitMap([0]), BitMap([65535, 65536, 3 * 65536 + 7]),
             BitMap(range(1000, 200_000)), BitMap(range(0, 70_000, 2))]
    for frac in (0.0005, 0.01, 0.3, 0.9):
        cases.append(BitMap(np.flatnonzero(rng.random(300_000) < frac).astype(np.uint32)))
    for bm in cases:
        if run_optimize:
            bm.run_optimize()
        bits = native_filter.membership(bm)
        assert bits.dtype == np.uint64
        assert bits.size == (0 if not bm else (bm.max() // 65536 + 1) * 1024)
        assert _unpacked(bits) == list(bm)
    assert _unpacked(native_filter.membership(np.array([9, 0, 2], dtype=np.uint32))) == [0, 2, 9]
    with pytest.raises(ValueError):
        native_filter._ext.roaring_bits(BitMap(range(100_000)).serialize()[:-5])
    with pytest.raises(ValueError):
        native_filter._ext.roaring_bits(b"\x00" * 16)
    # Two containers with their keys swapped (5, then 1): refused, never written out of bounds.
    good = bytearray(BitMap([1 * 65536, 5 * 65536]).serialize())
    assert good[:4] == (12346).to_bytes(4, "little")  # no run containers: keys start at byte 8
    good[8:10], good[12:14] = good[12:14], good[8:10]
    with pytest.raises(ValueError):
        native_filter._ext.roaring_bits(bytes(good))


@needs_ext
def test_nested_install_restores_the_outer_bits() -> None:
    with native_filter.installed(BitMap([1])) as fn:
        with native_filter.installed(BitMap([2])):
            assert fn(2) and not fn(1)
        assert fn(1) and not fn(2)
    assert not fn(1)  # cleared


@needs_ext
def test_bits_are_thread_local() -> None:
    seen: list[bool] = []
    with native_filter.installed(BitMap([1])) as fn:
        worker = threading.Thread(target=lambda: seen.append(fn(1)))
        worker.start()
        worker.join()
        assert fn(1)
    assert seen == [False]  # the other thread has no bits installed


def test_concurrent_searches_with_different_sets(index: HnswIndex, queries: np.ndarray) -> None:
    threads = 4
    sets = [BitMap(lb for lb in range(N) if lb % threads == t) for t in range(threads)]
    want = [index.search(queries, K, EF, filter_fn=bm.__contains__) for bm in sets]
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(t: int) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                for row, q in enumerate(queries):
                    labels, _ = index.search(q[None, :], K, EF, allowed=sets[t])
                    np.testing.assert_array_equal(labels[0], want[t][0][row])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors[0]


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_engine_uses_the_cpp_filter_at_any_selectivity(tmp_path: Path, share: float) -> None:
    """The filtered traversal uses the C++ filter whenever it is on its fast path; explain
    says which filter ran, and it returns min(k, |allowed|) hits that all pass the filter."""
    from sievedb_server.core.engine import Engine
    from sievedb_server.core.types import CollectionSpec, SearchParams
    from sievedb_server.filters.parser import parse
    from sievedb_server.filters.planner import PlannerConfig

    n = 3000
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    group = (rng.random(n) < share).astype(int)
    engine = Engine(tmp_path / "data", checkpoint_interval_s=3600,
                    planner=PlannerConfig(exact_budget=0, postfilter_min=1.01))
    try:
        engine.create_collection(
            CollectionSpec("c", DIM, Metric.L2, HnswParams(full_scan_threshold=0)),
        )
        engine.upsert("c", list(range(n)), vectors, [{"g": int(g)} for g in group])
        flt = parse("g == 1")
        res = engine.search("c", vectors[0], SearchParams(k=K, ef=32, explain=True), flt)
        assert res.plan is not None and res.plan.strategy == "hnsw_filtered"
        want = "C++ label filter" if native_filter.NATIVE else "Python label filter"
        assert want in res.plan.detail
        assert len(res.hits) == K
        assert all(group[int(h.id)] == 1 for h in res.hits)
    finally:
        engine.close()


def value_column(seed: int, size: int = N) -> np.ndarray:
    """A float64 value per label with some labels missing (NaN), as NumericIndex.column."""
    rng = np.random.default_rng(seed)
    column = rng.integers(0, 100, size).astype(np.float64)
    column[rng.random(size) < 0.1] = np.nan
    return column


@pytest.mark.parametrize(
    "bounds", [(20.0, True, 60.0, True), (20.0, False, 60.0, False), (-np.inf, True, 3.0, True)]
)
def test_column_range_matches_the_bitmap_of_the_range(
    index: HnswIndex, queries: np.ndarray, bounds: tuple[float, bool, float, bool]
) -> None:
    column = value_column(seed=21)
    lo, lo_incl, hi, hi_incl = bounds
    inside = ((column >= lo) if lo_incl else (column > lo)) & (
        (column <= hi) if hi_incl else (column < hi)
    )
    bm = BitMap(np.flatnonzero(inside).astype(np.uint32))
    want = index.search(queries, K, EF, allowed=bm)
    got = index.search(queries, K, EF, column_filter=ColumnRange(column, bounds))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    assert inside[got[0].ravel()].all()


def test_column_range_without_the_native_path(
    index: HnswIndex, queries: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    column = value_column(seed=22)
    bounds = (10.0, True, 30.0, False)
    before = index.search(queries, K, EF, column_filter=ColumnRange(column, bounds))
    monkeypatch.setattr(native_filter, "NATIVE", False)
    after = index.search(queries, K, EF, column_filter=ColumnRange(column, bounds))
    np.testing.assert_array_equal(after[0], before[0])


@needs_ext
def test_range_filter_reads_only_inside_its_column(
    index: HnswIndex, queries: np.ndarray
) -> None:
    # A column shorter than the index: labels past its end have no value and never pass.
    column = np.zeros(100, dtype=np.float64)
    labels, _ = native_filter.knn_query_column(
        index.index, queries, K, ColumnRange(column, (0.0, True, 0.0, True))
    )
    assert labels.max() < 100
    ext = native_filter._ext
    ext.set_range(np.array([np.nan, 1.0, 2.0]), 1.0, True, 2.0, False)
    try:
        assert [ext.in_range(label) for label in range(5)] == [False, True, False, False, False]
    finally:
        ext.clear_range()
    for bad in (np.zeros(4, dtype=np.float32), np.zeros((2, 2)), np.zeros(8)[::2]):
        with pytest.raises(ValueError, match="float64"):
            ext.set_range(bad, 0.0, True, 1.0, True)


@needs_native
def test_range_filter_runs_without_the_gil(index: HnswIndex, queries: np.ndarray) -> None:
    ext = native_filter._ext
    ext.reset_stats()
    column = ColumnRange(value_column(seed=23), (0.0, True, 50.0, True))
    index.search(queries[:3], K, EF, column_filter=column)
    assert ext.calls() > 0
    assert not ext.gil_seen()


@pytest.mark.parametrize("postfilter_min", [1.01, 0.0])
def test_engine_searches_a_range_through_its_column(
    tmp_path: Path, postfilter_min: float
) -> None:
    """A filter that is one indexed range is searched through the column (the filtered
    traversal, or the post-filter's check), with |allowed| exact, also while updates wait in
    the index's tail; deleted and moved points never come back."""
    from sievedb_server.core.engine import Engine
    from sievedb_server.core.types import CollectionSpec, FieldSpec, FieldType, SearchParams
    from sievedb_server.filters.parser import parse
    from sievedb_server.filters.planner import PlannerConfig

    n = 3000
    rng = np.random.default_rng(12)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    year = rng.integers(1990, 2030, n)
    engine = Engine(tmp_path / "data", checkpoint_interval_s=3600,
                    planner=PlannerConfig(exact_budget=0, postfilter_min=postfilter_min))
    try:
        engine.create_collection(CollectionSpec(
            "c", DIM, Metric.L2, HnswParams(full_scan_threshold=0),
            schema=(FieldSpec("year", FieldType.INTEGER),),
        ))
        engine.upsert("c", list(range(n)), vectors, [{"year": int(y)} for y in year])
        flt = parse("year >= 2000 and year < 2020")
        inside = (year >= 2000) & (year < 2020)

        def search(q: np.ndarray) -> tuple[list[int], object]:
            res = engine.search("c", q, SearchParams(k=K, ef=32, explain=True), flt)
            assert res.plan is not None
            return [int(h.id) for h in res.hits], res.plan

        ids, plan = search(vectors[0])
        assert plan.allowed == int(inside.sum())
        assert plan.strategy == ("hnsw_filtered" if postfilter_min > 1 else "hnsw_postfilter")
        if postfilter_min > 1:
            want = "C++" if native_filter.NATIVE else "Python"
            assert f"{want} column filter" in plan.detail
        assert len(ids) == K and inside[ids].all()

        # Delete the nearest allowed points: they are gone from the column as from the graph.
        engine.delete("c", ids[:3])
        inside[ids[:3]] = False
        again, plan = search(vectors[0])
        assert plan.allowed == int(inside.sum())
        assert not set(again) & set(ids[:3]) and inside[again].all() and len(again) == K

        # Updates wait in the tail (one moved out of the range, one into it): still exact.
        engine.upsert("c", [ids[3], 7], vectors[[ids[3], 7]], [{"year": 1980}, {"year": 2001}])
        inside[ids[3]], inside[7] = False, True
        third, plan = search(vectors[0])
        assert plan.allowed == int(inside.sum())
        assert ids[3] not in third and inside[third].all() and len(third) == K
    finally:
        engine.close()


@needs_ext
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 2**32 - 1), max_size=300)
    | st.lists(st.integers(0, 70_000), max_size=6_000)
    | st.lists(st.integers(130_000, 140_000), min_size=4_500, max_size=6_000),
    st.sampled_from([np.int64, np.uint32]),
)
def test_roaring_of_is_the_bitmap_of_the_labels(labels: list[int], dtype: type) -> None:
    """Sparse input (sorted), dense input (bit array), array and bitset containers, repeats."""
    arr = np.array(labels, dtype=dtype)
    got = native_filter.roaring_of(arr)
    assert got == BitMap(labels)
    assert bitmap_of(arr) == BitMap(labels)


@needs_ext
def test_roaring_of_refuses_labels_outside_uint32() -> None:
    for bad in (np.array([-1], dtype=np.int64), np.array([2**32], dtype=np.int64)):
        with pytest.raises(ValueError, match="uint32"):
            native_filter._ext.roaring_of(bad)
    with pytest.raises(ValueError, match="1-D"):
        native_filter._ext.roaring_of(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="uint32 or int64"):
        native_filter._ext.roaring_of(np.zeros(3, dtype=np.float64))
    # Other integer types are converted by the wrapper.
    assert native_filter.roaring_of(np.array([3, 1, 3], dtype=np.int32)) == BitMap([1, 3])


def test_bitmap_of_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native_filter, "_ext", None)
    assert native_filter.roaring_of(np.arange(3)) is None
    assert bitmap_of(np.array([70_000, 5, 5, 1], dtype=np.int64)) == BitMap([1, 5, 70_000])


def code_filter(seed: int, allowed_codes: list[int]) -> ColumnCodes:
    """A code column over N labels (codes 0..199, some labels without a value) and the bits
    of `allowed_codes`."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 200, N).astype(np.int32)
    codes[rng.random(N) < 0.1] = -1
    words = np.zeros(max(allowed_codes, default=0) // 64 + 1, dtype=np.uint64)
    for c in allowed_codes:
        words[c >> 6] |= np.uint64(1 << (c & 63))
    return ColumnCodes(codes, words)


@pytest.mark.parametrize("allowed_codes", [[5], list(range(0, 200, 2)), [63, 64, 199]])
def test_column_codes_match_the_bitmap_of_the_codes(
    index: HnswIndex, queries: np.ndarray, allowed_codes: list[int]
) -> None:
    test = code_filter(31, allowed_codes)
    inside = np.isin(test.codes, allowed_codes)
    np.testing.assert_array_equal(test.mask(np.arange(N + 5, dtype=np.int64)),
                                  np.concatenate([inside, np.zeros(5, dtype=bool)]))
    bm = BitMap(np.flatnonzero(inside).astype(np.uint32))
    want = index.search(queries, K, EF, allowed=bm)
    got = index.search(queries, K, EF, column_filter=test)
    np.testing.assert_array_equal(got[0], want[0])
    assert inside[got[0].ravel()].all()
    callback = test.callback()
    assert [callback(lb) for lb in range(50)] == inside[:50].tolist()
    assert not callback(N + 10)


@needs_ext
def test_code_filter_refuses_wrong_columns() -> None:
    ext = native_filter._ext
    ext.set_codes(np.array([-1, 0, 1, 70], dtype=np.int32), np.array([0b10], dtype=np.uint64))
    try:  # code 70 lies past the allowed bits: not allowed
        assert [ext.in_codes(label) for label in range(6)] == [False, False, True, False,
                                                                False, False]
    finally:
        ext.clear_codes()
    with pytest.raises(ValueError, match="int32"):
        ext.set_codes(np.zeros(4, dtype=np.int64), np.zeros(1, dtype=np.uint64))
    with pytest.raises(ValueError, match="uint64"):
        ext.set_codes(np.zeros(4, dtype=np.int32), np.zeros((1, 1), dtype=np.uint64))


@pytest.mark.parametrize(
    ("expr", "inside"),
    [
        ('tag == "a"', lambda tag: tag == "a"),
        ('tag in ["a", "c", "zz"]', lambda tag: np.isin(tag, ["a", "c", "zz"])),
        ('tag != "b"', lambda tag: (tag != "b") & (tag != "")),
    ],
)
def test_engine_searches_a_keyword_match_through_its_codes(
    tmp_path: Path, expr: str, inside: object
) -> None:
    """A match on a single-valued keyword field is a code-column test: exact |allowed| (points
    without the field excluded, as the reference says), hits that pass, and code changes on
    update and delete."""
    from sievedb_server.core.engine import Engine
    from sievedb_server.core.types import CollectionSpec, FieldSpec, FieldType, SearchParams
    from sievedb_server.filters.parser import parse
    from sievedb_server.filters.planner import PlannerConfig

    n = 3000
    rng = np.random.default_rng(13)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    tags = rng.choice(np.array(["a", "b", "c", ""], dtype="<U2"), n)  # "": no tag attribute
    engine = Engine(tmp_path / "data", checkpoint_interval_s=3600,
                    planner=PlannerConfig(exact_budget=0, postfilter_min=1.01))
    try:
        engine.create_collection(CollectionSpec(
            "c", DIM, Metric.L2, HnswParams(full_scan_threshold=0),
            schema=(FieldSpec("tag", FieldType.KEYWORD),),
        ))
        engine.upsert("c", list(range(n)), vectors,
                      [{"tag": str(t)} if t else {} for t in tags])
        flt = parse(expr)

        def check() -> list[int]:
            mask = inside(tags)  # type: ignore[operator]
            res = engine.search("c", vectors[0], SearchParams(k=K, ef=32, explain=True), flt)
            assert res.plan is not None and res.plan.allowed == int(mask.sum())
            assert "column filter" in res.plan.detail, res.plan.detail
            ids = [int(h.id) for h in res.hits]
            assert len(ids) == K and mask[ids].all()
            assert engine.count("c", flt) == int(mask.sum())
            return ids

        ids = check()
        # Move hits to another value (allowed by one filter, not the others), delete one: the
        # codes follow.
        engine.upsert("c", ids[:3], vectors[ids[:3]], [{"tag": "zz"}] * 3)
        tags[ids[:3]] = "zz"
        engine.delete("c", ids[3:4])
        tags[ids[3]] = ""
        again = check()
        assert ids[3] not in again
        # A restart rebuilds the codes from the postings in LMDB.
        engine.close()
        engine = Engine(tmp_path / "data", checkpoint_interval_s=3600,
                        planner=PlannerConfig(exact_budget=0, postfilter_min=1.01))
        assert check() == again
    finally:
        engine.close()
