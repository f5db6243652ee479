"""In-process engine: CRUD, exact path vs numpy, HNSW recall, persistence and recovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sievedb.synthetic import clustered_vectors
from sievedb_server.core.engine import Engine
from sievedb_server.core.types import CollectionSpec, HnswParams, Metric, SearchParams
from sievedb_server.errors import (
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    InvalidArgument,
    InvalidName,
    InvalidVector,
    PointNotFound,
)


def numpy_topk(data: np.ndarray, q: np.ndarray, k: int, metric: Metric) -> tuple[list, np.ndarray]:
    if metric is Metric.COSINE:
        data = data / np.linalg.norm(data, axis=1, keepdims=True)
        q = q / np.linalg.norm(q)
    if metric is Metric.L2:
        scores = ((data.astype(np.float64) - q) ** 2).sum(1)
        order = np.argsort(scores, kind="stable")[:k]
    else:
        scores = data.astype(np.float64) @ q
        order = np.argsort(-scores, kind="stable")[:k]
    return order.tolist(), scores[order]


@pytest.fixture
def engine(tmp_path: Path):
    eng = Engine(tmp_path / "data", checkpoint_interval_s=3600)
    yield eng
    eng.close()


@pytest.mark.parametrize("metric", list(Metric))
def test_exact_path_agrees_with_numpy(engine: Engine, metric: Metric) -> None:
    data, _ = clustered_vectors(3000, 24, seed=1)
    engine.create_collection(CollectionSpec("c", 24, metric))
    engine.upsert("c", list(range(3000)), data)
    queries, _ = clustered_vectors(20, 24, seed=2)
    for q in queries:
        hits = engine.search("c", q, SearchParams(k=10, exact=True)).hits
        ids, scores = numpy_topk(data, q, 10, metric)
        assert [h.id for h in hits] == ids
        np.testing.assert_allclose([h.score for h in hits], scores, rtol=1e-5, atol=1e-4)


def test_hnsw_recall_on_clustered_data(engine: Engine) -> None:
    n, dim = 20_000, 48
    data, _ = clustered_vectors(n, dim, seed=3)
    engine.create_collection(CollectionSpec("c", dim, Metric.COSINE))
    for i in range(0, n, 5000):
        engine.upsert("c", list(range(i, i + 5000)), data[i : i + 5000])
    queries, _ = clustered_vectors(200, dim, seed=4)
    approx = engine.search_batch("c", queries, SearchParams(k=10))
    exact = engine.search_batch("c", queries, SearchParams(k=10, exact=True))
    recall = np.mean(
        [len({h.id for h in a.hits} & {h.id for h in e.hits}) / 10 for a, e in zip(approx, exact)]
    )
    assert recall >= 0.95, recall


def test_upsert_replaces_and_delete_hides(engine: Engine) -> None:
    engine.create_collection(CollectionSpec("c", 4, Metric.L2, HnswParams(full_scan_threshold=0)))
    rng = np.random.default_rng(5)
    data = rng.standard_normal((500, 4)).astype(np.float32)
    ids = [f"p{i}" for i in range(500)]
    engine.upsert("c", ids, data, [{"i": i} for i in range(500)])
    target = np.full(4, 50.0, dtype=np.float32)
    engine.upsert("c", ["p7"], target[None, :], [{"moved": True}])
    assert engine.count("c") == 500
    hit = engine.search("c", target, SearchParams(k=1)).hits[0]
    assert hit.id == "p7" and hit.attributes == {"moved": True} and hit.score == pytest.approx(0)
    assert engine.delete("c", ["p7", "nope"])[0] == 1
    for exact in (False, True):
        hits = engine.search("c", target, SearchParams(k=5, exact=exact)).hits
        assert "p7" not in [h.id for h in hits] and len(hits) == 5
    assert engine.count("c") == 499


def test_duplicate_ids_in_one_batch_last_wins(engine: Engine) -> None:
    engine.create_collection(CollectionSpec("c", 2, Metric.L2))
    vecs = np.array([[1, 0], [0, 1], [5, 5]], dtype=np.float32)
    engine.upsert("c", [1, 2, 1], vecs, [{"v": "a"}, {"v": "b"}, {"v": "c"}])
    assert engine.count("c") == 2
    (p,) = engine.get("c", [1], with_vectors=True)
    assert p.attributes == {"v": "c"} and p.vector.tolist() == [5, 5]


def test_k_larger_than_collection_returns_everything(engine: Engine) -> None:
    engine.create_collection(CollectionSpec("c", 3, Metric.L2, HnswParams(full_scan_threshold=0)))
    engine.upsert("c", [1, 2, 3], np.eye(3, dtype=np.float32))
    engine.delete("c", [2])
    for exact in (False, True):
        hits = engine.search("c", np.ones(3, np.float32), SearchParams(k=50, exact=exact)).hits
        assert sorted(h.id for h in hits) == [1, 3]


def test_get_missing_and_errors(engine: Engine) -> None:
    engine.create_collection(CollectionSpec("c", 3))
    engine.upsert("c", [1], np.ones((1, 3), np.float32))
    with pytest.raises(PointNotFound):
        engine.get("c", [1, 2])
    assert [p.id for p in engine.get("c", [1, 2], allow_missing=True)] == [1]
    with pytest.raises(CollectionExists):
        engine.create_collection(CollectionSpec("c", 3))
    with pytest.raises(CollectionNotFound):
        engine.search("zz", np.ones(3), SearchParams())
    with pytest.raises(InvalidName):
        engine.create_collection(CollectionSpec("../etc", 3))
    with pytest.raises(DimensionMismatch):
        engine.upsert("c", [2], np.ones((1, 4), np.float32))
    with pytest.raises(InvalidVector):
        engine.upsert("c", [2], np.array([[1, np.nan, 0]], np.float32))
    with pytest.raises(InvalidVector, match="all zeros"):
        engine.search("c", np.zeros(3, np.float32), SearchParams())  # cosine of zero vector
    with pytest.raises(InvalidVector, match="row 1 contains NaN or Inf"):
        engine.search_batch("c", np.array([[1, 0, 0], [0, np.inf, 0]], np.float32),
                            SearchParams())
    # Finite, but cosine cannot normalise them: the squared norm over- or underflows float32.
    with pytest.raises(InvalidVector, match="overflows"):
        engine.search("c", np.array([3e19, 0, 0], np.float32), SearchParams())
    with pytest.raises(InvalidVector, match="row 2 cannot be normalised.*underflows"):
        engine.upsert("c", [7, 8, 9], np.array([[1, 0, 0], [0, 1, 0], [1e-30, 0, 0]],
                                               np.float32))
    with pytest.raises(InvalidArgument):
        engine.search("c", np.ones(3, np.float32), SearchParams(k=0))
    with pytest.raises(InvalidArgument):
        engine.upsert("c", [-1], np.ones((1, 3), np.float32))
    with pytest.raises(InvalidArgument):
        engine.upsert("c", [1, 2], np.ones((1, 3), np.float32))
    assert engine.count("c") == 1  # nothing half-written


def test_drop_and_recreate(engine: Engine) -> None:
    engine.create_collection(CollectionSpec("c", 3))
    engine.upsert("c", [1], np.ones((1, 3), np.float32))
    assert engine.drop_collection("c")
    assert not engine.drop_collection("c", missing_ok=True)
    engine.create_collection(CollectionSpec("c", 5))
    assert engine.count("c") == 0 and engine.describe_collection("c").spec.dim == 5
    assert [i.spec.name for i in engine.list_collections()] == ["c"]


def _fill(engine: Engine, n: int = 8000, dim: int = 16) -> np.ndarray:
    data, _ = clustered_vectors(n, dim, seed=9)
    engine.create_collection(CollectionSpec("c", dim, Metric.L2, HnswParams(full_scan_threshold=0)))
    engine.upsert("c", list(range(n // 2)), data[: n // 2])
    return data


def _answers(engine: Engine, data: np.ndarray) -> list[list]:
    return [
        [h.id for h in engine.search("c", q, SearchParams(k=10, ef=200)).hits] for q in data[:50]
    ]


def test_reopen_after_clean_close_gives_same_answers(tmp_path: Path) -> None:
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    data = _fill(eng)
    before = _answers(eng, data)
    eng.close()
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    info = eng.describe_collection("c")
    assert info.index_watermark == info.watermark and info.indexed_count == 4000
    assert _answers(eng, data) == before
    eng.close()


def test_replay_after_unclean_stop(tmp_path: Path) -> None:
    """Writes after the last checkpoint are replayed from the LMDB log on open."""
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    data = _fill(eng)
    eng.checkpoint()
    n = len(data)
    eng.upsert("c", list(range(n // 2, n)), data[n // 2 :])
    eng.delete("c", list(range(0, 100)))
    expected = [[h.id for h in eng.search("c", q, SearchParams(k=10, exact=True)).hits]
                for q in data[:50]]
    eng.close(checkpoint=False)  # as after a crash: the saved graph is older than LMDB
    eng2 = Engine(tmp_path, checkpoint_interval_s=3600)
    info = eng2.describe_collection("c")
    assert info.point_count == n - 100 and info.indexed_count == n - 100
    got = [[h.id for h in eng2.search("c", q, SearchParams(k=10, exact=True)).hits]
           for q in data[:50]]
    assert got == expected
    approx = [[h.id for h in eng2.search("c", q, SearchParams(k=10, ef=200)).hits]
              for q in data[:50]]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, expected)])
    assert recall >= 0.95
    eng2.close()


def test_missing_index_files_are_rebuilt(tmp_path: Path) -> None:
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    data = _fill(eng)
    before = [[h.id for h in eng.search("c", q, SearchParams(k=10, exact=True)).hits]
              for q in data[:20]]
    eng.close()
    folder = tmp_path / "collections" / "c"
    (folder / "index.hnsw").unlink()
    (folder / "vectors.f32").unlink()
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    assert eng.describe_collection("c").indexed_count == 4000
    after = [[h.id for h in eng.search("c", q, SearchParams(k=10, exact=True)).hits]
             for q in data[:20]]
    assert after == before
    eng.close()
