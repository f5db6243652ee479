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
from pyroaring import BitMap
from sievedb_server.core.types import HnswParams, Metric
from sievedb_server.index import native_filter
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
    # 24 rows > 4 * 2 threads: hnswlib's worker threads would see no installed buffer.
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
def test_labels_beyond_the_buffer_are_not_allowed(index: HnswIndex, queries: np.ndarray) -> None:
    with native_filter.installed(np.array([1, 3], dtype=np.uint32), size=4) as fn:
        assert [fn(label) for label in range(6)] == [False, True, False, True, False, False]
        assert not fn(2**40)
    # A buffer shorter than the index: nothing past its end comes back.
    with native_filter.installed(np.ones(100, dtype=np.uint8)) as fn:
        labels, _ = index.index.knn_query(queries, k=K, num_threads=1, filter=fn)
    assert labels.max() < 100
    with pytest.raises(ValueError):
        native_filter.membership(np.array([5], dtype=np.uint32), size=5)


@needs_ext
def test_membership_buffer() -> None:
    buf = native_filter.membership(BitMap([0, 2, 9]))
    assert buf.dtype == np.uint8 and buf.tolist() == [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    assert native_filter.membership(BitMap()).size == 0
    assert native_filter.membership(BitMap([3]), size=8).tolist() == [0, 0, 0, 1, 0, 0, 0, 0]


@needs_ext
def test_nested_install_restores_the_outer_buffer() -> None:
    with native_filter.installed(BitMap([1])) as fn:
        with native_filter.installed(BitMap([2])):
            assert fn(2) and not fn(1)
        assert fn(1) and not fn(2)
    assert not fn(1)  # cleared


@needs_ext
def test_buffers_are_thread_local() -> None:
    seen: list[bool] = []
    with native_filter.installed(BitMap([1])) as fn:
        worker = threading.Thread(target=lambda: seen.append(fn(1)))
        worker.start()
        worker.join()
        assert fn(1)
    assert seen == [False]  # the other thread has no buffer installed


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
def test_engine_uses_the_cpp_filter_only_for_selective_filters(
    tmp_path: Path, share: float
) -> None:
    """The executor picks the C++ filter up to NATIVE_MAX_SELECTIVITY, the Python one above;
    explain says which, and both return min(k, |allowed|) hits that all pass the filter."""
    from sievedb_server.core.engine import Engine
    from sievedb_server.core.query import NATIVE_MAX_SELECTIVITY
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
        native = native_filter.NATIVE and share <= NATIVE_MAX_SELECTIVITY
        want = "C++ label filter" if native else "Python label filter"
        assert want in res.plan.detail
        assert len(res.hits) == K
        assert all(group[int(h.id)] == 1 for h in res.hits)
    finally:
        engine.close()
