"""Peer adapters (Chroma, LanceDB, Milvus Lite, qdrant-client local mode) for the FANNS suite.

Two layers:
* The filter translators are pure functions: their output for every filterspec operator is
  checked here as text/dicts, with no peer installed (this is what CI runs).
* With a peer installed (`pip install -e '.[peers]'`; CI does not), each adapter loads a tiny
  seeded table with every attribute kind and every filter returns only rows passing
  `filterspec.mask`, with near-exact recall against numpy at generous parameters. Without
  the peer those tests skip.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.adapters.base import System
from benchmarks.adapters.chroma import to_chroma_where
from benchmarks.adapters.lancedb import to_lance_sql
from benchmarks.adapters.milvus_lite import to_milvus_expr
from benchmarks.adapters.peer_common import Untranslatable
from benchmarks.adapters.pgvector import to_pg_where
from benchmarks.adapters.qdrant_local import to_qdrant_filter
from benchmarks.filterspec import AttributeTable, Column, Filter, mask, validate

SCHEMA = {"kw": "keyword", "tags": "keyword_list", "n": "int", "x": "float", "flag": "bool",
          "ts": "datetime"}
N, DIM, K = 500, 16, 10

# Every operator, its negation, the combinations the workloads use, and edge cases
# (a keyword value that never occurs, open range bounds, nested not).
FILTERS: list[Filter] = [
    ["eq", "kw", "b"],
    ["eq", "kw", "never"],
    ["eq", "n", 3],
    ["eq", "flag", True],
    ["in", "kw", ["a", "c", "never"]],
    ["in", "n", [1, 2, 7]],
    ["in", "ts", [1_600_000_000, 1_600_086_400]],
    ["contains", "tags", "t1"],
    ["contains", "tags", "t5"],
    ["range", "n", 2, 5],
    ["range", "x", None, 0.25],
    ["range", "ts", 1_600_000_000 + 86_400 * 100, None],
    ["not", ["eq", "kw", "a"]],
    ["not", ["in", "n", [0, 1, 2]]],
    ["not", ["contains", "tags", "t0"]],
    ["not", ["range", "x", 0.2, 0.7]],
    ["and", ["eq", "kw", "a"], ["range", "n", 0, 6]],
    ["and", ["contains", "tags", "t0"], ["contains", "tags", "t2"]],
    ["or", ["eq", "kw", "d"], ["contains", "tags", "t3"], ["eq", "flag", False]],
    ["not", ["and", ["eq", "flag", True], ["or", ["range", "n", 4, None],
                                            ["not", ["contains", "tags", "t1"]]]]],
]


def tiny_table(n: int = N, seed: int = 7) -> AttributeTable:
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, 4, n)  # includes empty tag lists
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    return AttributeTable({
        "kw": Column("keyword", rng.integers(0, 4, n), vocab=("a", "b", "c", "d")),
        "tags": Column("keyword_list", rng.integers(0, 6, int(indptr[-1])), indptr=indptr,
                       vocab=tuple(f"t{i}" for i in range(6))),
        "n": Column("int", rng.integers(0, 10, n).astype(np.int64)),
        "x": Column("float", rng.random(n)),
        "flag": Column("bool", rng.random(n) < 0.5),
        "ts": Column("datetime",
                     1_600_000_000 + 86_400 * rng.integers(0, 365, n).astype(np.int64)),
    })


def unit(rows: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_filters_are_valid_and_exercise_every_kind() -> None:
    table = tiny_table()
    assert table.schema == SCHEMA
    for flt in FILTERS:
        validate(flt, SCHEMA)
    sizes = [int(mask(f, table).sum()) for f in FILTERS]
    assert 0 in sizes and max(sizes) > N // 2  # one empty, some permissive


# ---- pure translators (no peer needed) -------------------------------------------------

def test_chroma_where_translation() -> None:
    s = SCHEMA
    assert to_chroma_where(None, s) is None
    assert to_chroma_where(["eq", "kw", "a"], s) == {"kw": {"$eq": "a"}}
    assert to_chroma_where(["in", "n", [1, 2]], s) == {"n": {"$in": [1, 2]}}
    assert to_chroma_where(["contains", "tags", "t1"], s) == {"tags": {"$contains": "t1"}}
    # float bounds stay floats even when the YAML wrote an int
    assert to_chroma_where(["range", "x", 0, 1], s) == {
        "$and": [{"x": {"$gte": 0.0}}, {"x": {"$lte": 1.0}}]}
    assert to_chroma_where(["range", "n", None, 4], s) == {"n": {"$lte": 4}}
    # no $not in Chroma: negations are pushed to the leaves (De Morgan + complements)
    assert to_chroma_where(["not", ["eq", "kw", "a"]], s) == {"kw": {"$ne": "a"}}
    assert to_chroma_where(["not", ["in", "n", [1]]], s) == {"n": {"$nin": [1]}}
    assert to_chroma_where(["not", ["contains", "tags", "t1"]], s) == {
        "tags": {"$not_contains": "t1"}}
    assert to_chroma_where(["not", ["range", "n", 2, 5]], s) == {
        "$or": [{"n": {"$lt": 2}}, {"n": {"$gt": 5}}]}
    assert to_chroma_where(["not", ["and", ["eq", "flag", True], ["eq", "kw", "a"]]], s) == {
        "$or": [{"flag": {"$ne": True}}, {"kw": {"$ne": "a"}}]}
    assert to_chroma_where(["not", ["not", ["eq", "n", 1]]], s) == {"n": {"$eq": 1}}
    # Chroma wants >= 2 operands and no constants: fold them
    assert to_chroma_where(["and", ["eq", "n", 1]], s) == {"n": {"$eq": 1}}
    assert to_chroma_where(["range", "n", None, None], s) is None
    assert to_chroma_where(["not", ["in", "n", []]], s) is None
    with pytest.raises(Untranslatable):
        to_chroma_where(["in", "n", []], s)


def test_lance_sql_translation() -> None:
    s = SCHEMA
    assert to_lance_sql(None, s) is None
    assert to_lance_sql(["eq", "kw", "it's"], s) == "`kw` = 'it''s'"
    assert to_lance_sql(["eq", "flag", True], s) == "`flag` = TRUE"
    assert to_lance_sql(["in", "n", [1, 2]], s) == "`n` IN (1, 2)"
    assert to_lance_sql(["in", "n", []], s) == "FALSE"
    assert to_lance_sql(["contains", "tags", "t1"], s) == "array_has_any(`tags`, ['t1'])"
    assert to_lance_sql(["range", "x", 0, 1], s) == "(`x` BETWEEN 0.0 AND 1.0)"
    assert to_lance_sql(["range", "ts", 5, None], s) == "`ts` >= 5"
    assert to_lance_sql(["range", "ts", None, None], s) == "TRUE"
    assert to_lance_sql(["not", ["or", ["eq", "n", 1], ["eq", "kw", "a"]]], s) == (
        "(NOT (`n` = 1 OR `kw` = 'a'))")


def test_milvus_expr_translation() -> None:
    s = SCHEMA
    assert to_milvus_expr(None, s) == ""
    assert to_milvus_expr(["eq", "kw", 'say "hi"'], s) == 'kw == "say \\"hi\\""'
    assert to_milvus_expr(["eq", "flag", False], s) == "flag == false"
    assert to_milvus_expr(["in", "kw", ["a", "b"]], s) == 'kw in ["a", "b"]'
    assert to_milvus_expr(["contains", "tags", "t1"], s) == 'ARRAY_CONTAINS(tags, "t1")'
    assert to_milvus_expr(["range", "x", 0, 1], s) == "(x >= 0.0 and x <= 1.0)"
    assert to_milvus_expr(["range", "n", None, 3], s) == "(n <= 3)"
    assert to_milvus_expr(["not", ["and", ["eq", "n", 1], ["eq", "ts", 2]]], s) == (
        "(not (n == 1 and ts == 2))")


def test_qdrant_filter_translation() -> None:
    s = SCHEMA
    assert to_qdrant_filter(None, s) is None
    assert to_qdrant_filter(["eq", "kw", "a"], s) == {
        "must": [{"key": "kw", "match": {"value": "a"}}]}
    assert to_qdrant_filter(["in", "n", [1, 2]], s) == {
        "must": [{"key": "n", "match": {"any": [1, 2]}}]}
    assert to_qdrant_filter(["in", "flag", [True]], s) == {
        "must": [{"should": [{"key": "flag", "match": {"value": True}}]}]}
    assert to_qdrant_filter(["contains", "tags", "t1"], s) == {
        "must": [{"key": "tags", "match": {"value": "t1"}}]}
    assert to_qdrant_filter(["range", "x", 0, None], s) == {
        "must": [{"key": "x", "range": {"gte": 0.0}}]}
    assert to_qdrant_filter(["not", ["or", ["eq", "n", 1], ["eq", "n", 2]]], s) == {
        "must_not": [{"should": [{"key": "n", "match": {"value": 1}},
                                 {"key": "n", "match": {"value": 2}}]}]}


def test_pg_where_translation() -> None:
    s = SCHEMA
    assert to_pg_where(None, s) is None
    assert to_pg_where(["eq", "kw", "it's"], s) == "\"kw\" = 'it''s'"
    assert to_pg_where(["in", "flag", [True, False]], s) == '"flag" IN (TRUE, FALSE)'
    assert to_pg_where(["in", "n", []], s) == "FALSE"
    assert to_pg_where(["contains", "tags", "t1"], s) == "\"tags\" @> ARRAY['t1']::text[]"
    assert to_pg_where(["range", "x", 0, 1], s) == '("x" BETWEEN 0.0 AND 1.0)'
    assert to_pg_where(["range", "ts", None, 7], s) == '"ts" <= 7'
    assert to_pg_where(["not", ["and", ["eq", "n", 1], ["eq", "kw", "a"]]], s) == (
        "(NOT (\"n\" = 1 AND \"kw\" = 'a'))")


# ---- the adapters against the real peers (skipped where not installed) ----------------

def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


PEERS = [
    pytest.param("chroma", {}, {"ef": 200}, marks=pytest.mark.skipif(
        not _installed("chromadb"), reason="chromadb not installed (peers extra)")),
    pytest.param("lancedb", {}, {"ef": 200}, marks=pytest.mark.skipif(
        not _installed("lancedb"), reason="lancedb not installed (peers extra)")),
    pytest.param("milvus_lite", {}, {"ef": 200}, marks=pytest.mark.skipif(
        not (_installed("pymilvus") and _installed("milvus_lite")),
        reason="pymilvus[milvus_lite] not installed (peers extra)")),
    pytest.param("pgvector", {}, {"ef": 200}, marks=pytest.mark.skipif(
        not (_installed("pgserver") and _installed("psycopg") and _installed("pgvector")),
        reason="pgserver / psycopg / pgvector not installed (peers extra)")),
    pytest.param("qdrant_local", {"in_memory": True}, {}, marks=pytest.mark.skipif(
        not _installed("qdrant_client"), reason="qdrant-client not installed (peers extra)")),
]


def make_system(kind: str, workdir: Path, **build: object) -> System:
    if kind == "chroma":
        from benchmarks.adapters.chroma import Chroma
        return Chroma(workdir, **build)
    if kind == "lancedb":
        from benchmarks.adapters.lancedb import LanceDB
        return LanceDB(workdir, **build)
    if kind == "milvus_lite":
        from benchmarks.adapters.milvus_lite import MilvusLite
        return MilvusLite(workdir, **build)
    if kind == "pgvector":
        from benchmarks.adapters.pgvector import PgVector
        return PgVector(workdir, **build)
    from benchmarks.adapters.qdrant_local import QdrantLocal
    return QdrantLocal(workdir, **build)


@pytest.fixture
def workdir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """tmp_path, except for pgvector: pgserver runs PostgreSQL as the user `pgserver` when we
    are root, and pytest resets its base temp folder to mode 0700 whenever another pytest
    session starts (other engineers' runs here), which locks that user out mid-test. A
    folder directly under the system temp dir stays traversable."""
    if request.node.callspec.params.get("kind") != "pgvector":
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="sievedb-test-pgvector-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def exact(base: np.ndarray, q: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    ids = np.flatnonzero(allowed)
    scores = base[ids] @ q
    return ids[np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "build", "params"), PEERS)
def test_peer_filters_and_recall(kind: str, build: dict, params: dict, workdir: Path) -> None:
    table = tiny_table()
    base, queries = unit(N, 1), unit(3, 2)
    system = make_system(kind, workdir, **build)
    try:
        info = system.build(base, table)
        assert info.seconds > 0 and (info.disk_bytes > 0 or info.in_memory)
        system.set_query_params(**params)
        found, truth = 0, 0
        for flt in [None, *FILTERS]:
            assert system.supports(flt), flt
            allowed = np.ones(N, bool) if flt is None else mask(flt, table)
            for q in queries:
                ids = system.search(q, flt, K)
                assert ids.dtype == np.int64 and len(set(ids.tolist())) == ids.size
                assert allowed[ids].all(), (flt, ids[~allowed[ids]])
                want = exact(base, q, allowed, K)
                found += len(set(ids.tolist()) & set(want.tolist()))
                truth += want.size
        assert found / truth >= 0.95, found / truth
    finally:
        system.close()


@pytest.mark.skipif(not _installed("lancedb"), reason="lancedb not installed (peers extra)")
def test_lancedb_postfilter_never_returns_failing_rows(tmp_path: Path) -> None:
    """prefilter=False is LanceDB's post-filter: fewer than k rows, never a wrong one."""
    table = tiny_table()
    base = unit(N, 1)
    system = make_system("lancedb", tmp_path)
    try:
        system.build(base, table)
        system.set_query_params(prefilter=False, ef=64)
        flt = ["and", ["contains", "tags", "t0"], ["contains", "tags", "t2"]]
        allowed = mask(flt, table)
        for q in unit(4, 3):
            ids = system.search(q, flt, K)
            assert allowed[ids].all() and ids.size <= K
    finally:
        system.close()


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "build", "params"), PEERS[:4])
def test_peer_reopens_a_finished_build(kind: str, build: dict, params: dict,
                                       workdir: Path) -> None:
    """Same data + parameters in the same work folder: reopened, not rebuilt; same answers."""
    table = tiny_table(200)
    base, q = unit(200, 4), unit(1, 5)[0]
    flt: Filter = ["contains", "tags", "t1"]
    first = make_system(kind, workdir, **build)
    try:
        assert not first.build(base, table).cached
        first.set_query_params(**params)
        want = first.search(q, flt, K)
    finally:
        first.close()
    again = make_system(kind, workdir, **build)
    try:
        info = again.build(base, table)
        assert info.cached and info.disk_bytes > 0
        again.set_query_params(**params)
        assert again.search(q, flt, K).tolist() == want.tolist()
    finally:
        again.close()
    changed = make_system(kind, workdir, **build, m=8)  # other parameters: rebuilt
    try:
        assert not changed.build(base, table).cached
    finally:
        changed.close()


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "build", "params"), PEERS[:4])
def test_peer_ef_takes_effect(kind: str, build: dict, params: dict, workdir: Path) -> None:
    """The sweep's `ef` must reach the index the timed queries use (a silent no-op would make
    every point of a peer's sweep the same setting): a weak graph, ef 10 vs ef 400."""
    n = 2000
    table = tiny_table(n)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n + 20, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    base, queries = x[:n], x[n:]
    system = make_system(kind, workdir, **build, m=4, ef_construction=16)
    try:
        system.build(base, table)
        everything = np.ones(n, bool)
        truth = [set(exact(base, q, everything, K).tolist()) for q in queries]
        recall = {}
        for ef in (10, 400):
            system.set_query_params(ef=ef)
            hits = [len(set(system.search(q, None, K).tolist()) & t)
                    for q, t in zip(queries, truth, strict=True)]
            recall[ef] = sum(hits) / (K * len(queries))
        assert recall[400] >= 0.95 and recall[10] < recall[400] - 0.05, recall
    finally:
        system.close()
