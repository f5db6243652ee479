"""The FANNS benchmark suite: generator, bucketing, tuner, recall, and an end-to-end run.

Correctness only, never timings: the end-to-end test runs `sievedb bench suite` on a tiny
synthetic-arxiv workload (seconds) and checks the report, the plots and the result rows;
everything is written under tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("yaml")

from benchmarks.datasets.synthetic_arxiv import (
    SCHEMA,
    ArxivSpec,
    assignments,
    attributes,
    generate,
    vector_chunks,
)
from benchmarks.fanns_queries import FAMILIES, Bucket, bucket_of, build_query_set
from benchmarks.filterspec import mask, validate
from benchmarks.suite_protocol import Point, expand_sweep, pick_tuned, recall_at

WORKLOADS = {
    "em": {"family": "em", "field": "number_of_sub_categories"},
    "r": {"family": "r", "field": "update_date"},
    "emis": {"family": "emis", "field": "main_categories"},
    "em_and_r": {"family": "em_and_r", "em_field": "number_of_sub_categories",
                 "r_field": "update_date"},
    "two_tag": {"family": "two_tag", "field": "sub_categories"},
    "or": {"family": "or", "field": "main_categories"},
    "not": {"family": "not", "field": "main_categories", "r_field": "update_date"},
}


# -- the synthetic-arxiv generator -------------------------------------------------------------

def test_generator_has_the_eleven_attributes_with_their_types() -> None:
    table = attributes(ArxivSpec(n=3000, dim=8, n_queries=10))
    assert table.schema == SCHEMA and len(SCHEMA) == 11
    assert len(table) == 3000
    cols = table.columns
    for field, lst in (("number_of_main_categories", "main_categories"),
                       ("number_of_sub_categories", "sub_categories"),
                       ("number_of_authors", "authors")):
        lengths = np.diff(cols[lst].indptr)
        assert np.array_equal(cols[field].values, lengths), field
        assert lengths.min() >= 1
    assert 0.70 < cols["has_comment"].values.mean() < 0.78  # the paper's 74.2 %
    row = next(table.rows(0, 1))
    assert isinstance(row["submitter"], str) and isinstance(row["authors"], list)
    assert isinstance(row["update_date"], int) and isinstance(row["has_comment"], bool)
    # Every sub-category belongs to one of the row's main categories' pools ("cs.AB" → "cs").
    for r in table.rows(0, 200):
        assert {s.split(".")[0] for s in r["sub_categories"]} <= set(r["main_categories"])
        assert len(set(r["authors"])) == len(r["authors"])


def test_generator_is_skewed() -> None:
    table = attributes(ArxivSpec(n=20_000, dim=8, n_queries=0))
    main = np.bincount(table.columns["main_categories"].values)
    assert main.max() > 0.3 * 20_000 and main.max() > 50 * np.median(main)
    authors = np.bincount(table.columns["authors"].values)
    authors = authors[authors > 0]
    assert authors.max() > 20 * np.median(authors)  # Zipf: a few very prolific authors
    nsub = np.bincount(table.columns["number_of_sub_categories"].values)
    assert nsub[1] > nsub[3] > nsub[6] > 0  # a long, thinning tail (the EM attribute)


def test_generator_is_deterministic_and_chunk_independent(tmp_path: Path) -> None:
    spec = ArxivSpec(n=9000, dim=12, n_queries=30, seed=5)
    a = np.concatenate(list(vector_chunks(spec, chunk=4096)))
    b = np.concatenate(list(vector_chunks(spec, chunk=100_000)))
    assert np.array_equal(a, b) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    other = np.concatenate(list(vector_chunks(ArxivSpec(n=9000, dim=12, n_queries=30, seed=6))))
    assert not np.array_equal(a, other)
    t1, t2 = attributes(spec), attributes(spec)
    for name in SCHEMA:
        assert np.array_equal(t1.columns[name].values, t2.columns[name].values)
    cached = generate(spec, tmp_path)  # streamed to .npy and memory-mapped
    assert np.array_equal(np.asarray(cached.base), a)
    assert cached.queries.shape == (30, 12)


def test_correlated_variant_ties_categories_to_clusters() -> None:
    def purity(variant: str) -> float:
        spec = ArxivSpec(n=20_000, dim=8, n_queries=0, variant=variant)
        table = attributes(spec)
        col = table.columns["main_categories"]
        first = col.values[col.indptr[:-1]]
        assign = assignments(spec)
        share = []
        for c in np.unique(assign):
            counts = np.bincount(first[assign == c])
            share.append(counts.max() / counts.sum())
        return float(np.mean(share))

    assert purity("correlated") > purity("uncorrelated") + 0.2


# -- workloads and bucketing -------------------------------------------------------------------

def test_every_family_lands_in_its_buckets_with_valid_filters() -> None:
    table = attributes(ArxivSpec(n=20_000, dim=8, n_queries=50))
    buckets = [Bucket("50%", 0.25, 0.75), Bucket("10%", 0.05, 0.2),
               Bucket("1%", 0.005, 0.02), Bucket("10-100", min_count=10, max_count=100)]
    assert set(WORKLOADS) == set(FAMILIES)
    for name, wl in WORKLOADS.items():
        qs = build_query_set(table, 50, wl, buckets, 3, seed=1, give_up_after=60)
        assert qs, name
        for q in qs:
            validate(q.filter, table.schema)
            count = int(mask(q.filter, table).sum())
            assert count == q.count
            assert bucket_of(count, len(table), buckets) == q.bucket
            assert 0 <= q.qrow < 50
    # The paper's three reach every bucket on this data.
    for name in ("em", "r", "emis"):
        got = {q.bucket for q in build_query_set(table, 50, WORKLOADS[name], buckets, 2, seed=2)}
        assert got == {b.name for b in buckets}, name


def test_bucket_of_uses_selectivity_and_counts() -> None:
    buckets = [Bucket("50%", 0.25, 0.75), Bucket("0.1%", 0.0005, 0.002, min_count=101),
               Bucket("10-100", min_count=10, max_count=100)]
    assert bucket_of(50_000, 100_000, buckets) == "50%"
    assert bucket_of(150, 100_000, buckets) == "0.1%"
    assert bucket_of(100, 100_000, buckets) == "10-100"  # 0.1 % but not > 100 matches
    assert bucket_of(5, 100_000, buckets) is None


# -- recall and the tuner ----------------------------------------------------------------------

def test_recall_handles_short_truth_rows() -> None:
    gt = np.array([[1, 2, 3, 4], [7, 8, -1, -1], [-1, -1, -1, -1]])
    found = [np.array([1, 2, 9, 10]), np.array([8]), np.array([], dtype=np.int64)]
    # row 0: 2 of 4; row 1: 1 of its 2 allowed; row 2: nothing passes, nothing returned = 1.
    assert recall_at(found, gt, 4) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert recall_at(found, gt, 2) == pytest.approx((1.0 + 0.5 + 1.0) / 3)


def test_tuner_picks_the_fastest_setting_reaching_the_target() -> None:
    pts = [Point({"ef": 16}, 0.80, 9000.0, np.zeros(1), 0),
           Point({"ef": 32}, 0.96, 5000.0, np.zeros(1), 0),
           Point({"ef": 64}, 0.99, 3000.0, np.zeros(1), 0),
           Point({"ef": 128}, 0.97, 6000.0, np.zeros(1), 0)]
    assert pick_tuned(pts, 0.95).params == {"ef": 128}
    assert pick_tuned(pts, 0.985).params == {"ef": 64}
    # Nobody reaches the target: the best recall wins (ties broken by QPS).
    assert pick_tuned(pts, 0.999).params == {"ef": 64}


def test_sweeps_expand_in_yaml_order() -> None:
    assert expand_sweep({}) == [{}]
    assert expand_sweep({"ef": [16, 32]}) == [{"ef": 16}, {"ef": 32}]
    assert expand_sweep({"ef": [64], "fetch_multiplier": [2, 10]}) == [
        {"ef": 64, "fetch_multiplier": 2}, {"ef": 64, "fetch_multiplier": 10}]
    assert expand_sweep({"settings": [{"ef": 8}, {"ef": 4}]}) == [{"ef": 8}, {"ef": 4}]


# -- sievedb and numpy agree on every family's filters ----------------------------------------

def test_sievedb_counts_match_numpy_for_every_family(tmp_path: Path) -> None:
    pytest.importorskip("sievedb_server")
    from sievedb_server.filters.parser import parse

    from benchmarks.adapters.sievedb import SievedbEngine, to_sievedb_filter
    from benchmarks.filterspec import to_sievedb_expr

    data = generate(ArxivSpec(n=1500, dim=8, n_queries=20), None)
    system = SievedbEngine(tmp_path / "w", cache_dir=tmp_path / "cache", m=8,
                           ef_construction=32)
    system.build(data.base, data.table)
    try:
        buckets = [Bucket("50%", 0.25, 0.75), Bucket("1%", 0.004, 0.03)]
        for wl in WORKLOADS.values():
            qs = build_query_set(data.table, 20, wl, buckets, 3, seed=3, give_up_after=60)
            system.check_counts([q.filter for q in qs], [q.count for q in qs])
            for q in qs:  # the objects built directly are what the text form parses to
                text = to_sievedb_expr(q.filter, data.table.schema)
                assert to_sievedb_filter(q.filter, data.table.schema) == parse(text), text
            for q in qs[:2]:
                ids = system.search(data.queries[q.qrow], q.filter, 10)
                assert mask(q.filter, data.table)[ids].all()
    finally:
        system.close()


# -- end to end --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sievedb_bench_suite_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    pytest.importorskip("matplotlib")
    results = tmp_path / "results"
    args = [
        "benchmarks/workloads/fanns_tiny.yaml", "--name", "tiny", "--no-progress",
        "--cache-dir", str(tmp_path / "cache"), "--results-dir", str(results),
        "--set", ("workloads={em: {family: em, field: number_of_sub_categories}, "
                 "not: {family: not, field: main_categories, r_field: update_date}}"),
        "--set", "systems.unknown_peer={adapter: 'benchmarks.adapters.no_such:Peer'}",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "server"), str(ROOT / "client"), str(ROOT / "proto"), str(ROOT),
         os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "sievedb.cli", "bench", "suite", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=170, env=env,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads((results / "tiny.json").read_text())
    assert doc["command"].startswith("sievedb bench suite benchmarks/workloads/fanns_tiny.yaml")
    assert doc["timing"] == "interleaved by slice"
    assert doc["environment"]["git_sha"] and doc["environment"]["cpu_model"]
    by_system = {s["system"]: s for s in doc["systems"]}
    assert "no_such" in by_system["unknown_peer"]["unavailable"]
    ran = {"sievedb", "sievedb_grpc", "numpy_exact", "hnswlib_filter", "hnswlib_postfilter",
           "faiss_hnsw"}
    assert ran <= set(by_system)
    for name in ran:
        assert "error" not in by_system[name] and by_system[name]["peak_rss_bytes"] > 0
    rows = doc["rows"]
    tuned = [r for r in rows if r["phase"] == "tuned" and r["mode"] == "single"]
    assert {r["system"] for r in tuned} == ran
    assert {(r["workload"], r["k"]) for r in tuned} == {("em", 10), ("em", 100), ("not", 10)}
    for r in rows:
        assert 0.0 <= r["recall"] <= 1.0 and r["qps"] > 0
    for r in tuned:
        assert r["runs"] == 3 and len(r["qps_runs"]) == 3
        if r["system"] == "numpy_exact":
            assert r["recall"] == pytest.approx(1.0)
    assert {r["system"] for r in rows if r["mode"] == "batch"} == {"sievedb", "sievedb_grpc"}
    assert any(r["mode"] == "threads" for r in rows)
    md = (results / "tiny.md").read_text()
    assert md.startswith("# tiny") and "## Summary, k = 10" in md and "unknown_peer" in md
    for wl in ("em", "not"):
        png = results / f"tiny_{wl}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The report re-renders from the JSON alone.
    from benchmarks import suite_report

    (results / "tiny.md").unlink()
    suite_report.write(doc, "tiny", results)
    assert (results / "tiny.md").read_text() == md
    # Two runs of the same workload (e.g. peers added later) merge into one report.
    names = [s["system"] for s in doc["systems"]]

    def part(keep: list[str]) -> dict:
        return {**doc, "systems": [s for s in doc["systems"] if s["system"] in keep],
                "rows": [r for r in doc["rows"] if r["system"] in keep]}

    merged = suite_report.merge([part(names[:3]), part(names[3:])])
    assert suite_report.summary_rows(merged) == suite_report.summary_rows(doc)
    assert len(merged["merged_from"]) == 2
    with pytest.raises(ValueError):
        suite_report.merge([doc, {**doc, "buckets": [{**doc["buckets"][0], "queries": 999}]}])


def test_suite_runs_a_published_format_with_its_shipped_query_sets(tmp_path: Path) -> None:
    """arxiv-fanns files (fabricated, 7 rows): `family: dataset` takes the shipped EM/EMIS
    filters, bucketed by measured selectivity; generated families run on the same table."""
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(ROOT / "tests"))
    from test_bench_datasets import make_arxiv

    from benchmarks import suite

    folder = tmp_path / "arxiv-for-fanns-small"
    make_arxiv(folder)
    wl = {
        "name": "arxiv_tiny", "seed": 0,
        "dataset": {"kind": "arxiv-fanns", "params": {"path": str(folder), "progress": False}},
        "index": {"m": 4, "ef_construction": 16}, "ks": [2], "queries_per_bucket": 3,
        "protocol": {**suite.PROTOCOL_DEFAULTS, "tune_queries": 1, "runs": 1, "warmup": 0},
        "buckets": [{"name": "any", "min_count": 1}],
        "workloads": {"em": {"family": "dataset", "workload": "em"},
                      "emis": {"family": "dataset", "workload": "emis"},
                      "r2": {"family": "r", "field": "update_date"}},
        "systems": {"numpy_exact": {}, "sievedb": {"ef": [8]}},
        "interleave": False,  # one system after another (the end-to-end test interleaves)
    }
    doc = suite.run(wl, cache_dir=tmp_path / "cache", results_dir=tmp_path / "results",
                    isolate=False, progress=False)
    assert doc["timing"] == "one system after another"
    assert [s["system"] for s in doc["systems"]] == ["numpy_exact", "sievedb"]
    info = {b["workload"]: b for b in doc["buckets"]}
    # EM labels 1, 2, 5 and EMIS "cs", "stat", "hep": the filters that match nothing drop out.
    assert info["em"]["queries"] == 2 and info["emis"]["queries"] == 2
    tuned = [r for r in doc["rows"] if r["phase"] == "tuned" and r["mode"] == "single"]
    assert {(r["system"], r["workload"]) for r in tuned} >= {
        ("numpy_exact", "em"), ("numpy_exact", "emis"), ("sievedb", "em"), ("sievedb", "emis")}
    for r in tuned:
        if r["system"] == "numpy_exact":
            assert r["recall"] == pytest.approx(1.0)


def test_slow_points_are_cut_at_the_time_budget() -> None:
    """A point slower than `point_budget_s` is measured on the prefix of queries that fits."""
    import time

    from benchmarks.suite_protocol import QuerySlice, run_slice

    class Slow:
        name, thread_safe, has_batch = "slow", True, False

        def set_query_params(self, **params: object) -> None:
            pass

        def search(self, q: np.ndarray, flt: object, k: int) -> np.ndarray:
            time.sleep(0.02)
            return np.arange(k)

    n = 12
    qs = QuerySlice("w", "b", np.zeros((n, 4), np.float32), [None] * n,
                    np.tile(np.arange(10), (n, 1)))
    proto = {"tune_queries": 4, "runs": 3, "target_recall": 0.95, "warmup": 0,
             "point_budget_s": 0.05, "threads": [2]}
    rows = run_slice(Slow(), [{}], qs, 10, proto)
    tune = next(r for r in rows if r["phase"] == "tune")
    tuned = next(r for r in rows if r["phase"] == "tuned")
    assert tune["queries"] < 4 and tuned["queries"] < 8 and tuned["runs"] == 1
    assert tuned["recall"] == 1.0
    assert not [r for r in rows if r["mode"] == "threads"]  # cut short: no throughput runs


def test_hnswlib_postfilter_baseline_survives_a_short_traversal() -> None:
    """hnswlib raises when it reaches fewer points than asked for; the baseline asks for fewer.

    A CI run failed on exactly this at tiny scale (fetch = k × multiplier > reachable points).
    """
    import hnswlib

    from benchmarks.adapters.baselines import knn_up_to

    rng = np.random.default_rng(3)
    data = rng.standard_normal((6, 8)).astype(np.float32)
    index = hnswlib.Index(space="ip", dim=8)
    index.init_index(max_elements=10, M=4, ef_construction=16, random_seed=3)
    index.add_items(data, np.arange(6))
    index.mark_deleted(0)  # five live points; asking for 100 must not raise
    index.set_ef(100)
    with pytest.raises(RuntimeError):
        index.knn_query(data[1], k=100, num_threads=1)
    labels = knn_up_to(index, data[1], 100)
    assert 1 <= labels.size <= 5
    assert 0 not in labels.tolist()
    assert len(set(labels.tolist())) == labels.size


def test_slices_rotate_over_the_systems_and_a_failure_stops_only_its_system() -> None:
    """`_drive` runs each slice on every live system, the order rotated per slice; a system
    that raises is reported with the rows it had and gets no further slices."""
    from benchmarks import suite

    calls: list[str] = []

    class Fake:
        def __init__(self, name: str, fail_at: int | None = None) -> None:
            self.name, self.fail_at, self.failed = name, fail_at, None
            self.finished = False

        def run(self, k: int, workload: str, index: int) -> list[dict]:
            calls.append(f"{self.name}{index}")
            if index == self.fail_at:
                raise RuntimeError("boom")
            return [{"system": self.name, "slice": index}]

        def finish(self) -> dict:
            self.finished = True
            return {"system": self.name}

    a, b = Fake("a"), Fake("b", fail_at=1)
    results: dict[str, dict] = {}
    suite._drive([a, b], [(10, "w", i) for i in range(3)], results, isolate=False,
                 progress=False)
    assert calls == ["a0", "b0", "b1", "a1", "a2"]  # rotated; b gets nothing after failing
    assert [r["slice"] for r in results["a"]["rows"]] == [0, 1, 2]
    assert results["b"]["error"] == "RuntimeError: boom"
    assert [r["slice"] for r in results["b"]["rows"]] == [0]
    assert a.finished and b.finished
