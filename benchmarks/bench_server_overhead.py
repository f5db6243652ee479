"""What sievedb adds on top of the hnswlib graph it wraps: unfiltered k=10 search, same index.

    python -m benchmarks.bench_server_overhead           # the committed run: 100k x 384
    python -m benchmarks.bench_server_overhead --quick   # smoke test: 10k vectors, 200 queries

Data: the synthetic arXiv base (seeded clustered vectors, L2-normalised, cosine) and 1000
held-out queries from the same draw. One hnswlib index is built directly (M=16,
ef_construction=200, inner product on the normalised vectors) and the same vectors are
loaded into sievedb through `Engine.upsert` in batches of 5000 (the collection also carries
the arXiv-like attributes of `bench_filtered`, which unfiltered search does not read).

Measured in one run, sequentially, one client thread, the same queries, at each ef:

(a) hnswlib `knn_query(q, k, num_threads=1)` directly;
(b) the sievedb in-process `Engine.search` (validation, normalisation, planning, locking,
    hit materialisation; `with_attributes=False`);
(c) sievedb through gRPC: `sievedb.Client.search` against a server on 127.0.0.1 in the same
    process (so client and server share the GIL, as they would not across machines).

plus batch throughput: hnswlib `knn_query(Q, num_threads=cores)` against `Engine.search_batch`
and `Client.search_batch` (which both use the multi-threaded hnswlib call underneath).
Recall@10 of each is against the exact top-10 (numpy).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_filtered import open_sievedb
from benchmarks.datasets.synthetic_arxiv import make_dataset
from benchmarks.harness import (
    CACHE_DIR,
    RESULTS_DIR,
    Timer,
    command_line,
    environment,
    latency_summary,
    markdown_table,
    quiet_server_logs,
    recall_at_k,
    time_each,
    write_results,
)
from benchmarks.systems import grpc_server, hnswlib_index

__all__ = ["exact_topk_all", "main", "run"]

log = logging.getLogger("bench_server_overhead")

FULL = {"n": 100_000, "dim": 384, "queries": 1000, "efs": [64, 128], "batch_repeats": 3}
QUICK = {"n": 10_000, "dim": 384, "queries": 200, "efs": [64, 128], "batch_repeats": 2}
M, EF_CONSTRUCTION, K, SEED, WARMUP = 16, 200, 10, 0, 20


def exact_topk_all(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k by inner product for every query (chunked over queries)."""
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for s in range(0, queries.shape[0], 256):
        scores = queries[s : s + 256] @ base.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        out[s : s + 256] = np.take_along_axis(part, order, axis=1)
    return out


def _threads() -> int:
    import os

    return max(1, os.cpu_count() or 1)


def run(
    cfg: dict[str, Any],
    *,
    cache_dir: Path = CACHE_DIR,
    results_dir: Path = RESULTS_DIR,
    name: str = "server_overhead",
) -> dict[str, Any]:
    from sievedb_server.core.types import SearchParams

    env = environment()
    with Timer() as total:
        data = make_dataset(cfg["n"], cfg["dim"], cfg["queries"], variant="correlated",
                            seed=SEED)
        base, queries = data.base, data.queries
        nq = queries.shape[0]
        truth = exact_topk_all(base, queries, K)
        index, hnsw_build = hnswlib_index(base, m=M, ef_construction=EF_CONSTRUCTION,
                                          cache_dir=cache_dir)
        coll, engine, sv_build = open_sievedb(data, m=M, ef_construction=EF_CONSTRUCTION,
                                              cache_dir=cache_dir)
        rows: list[dict[str, Any]] = []
        batch_rows: list[dict[str, Any]] = []
        stages: dict[int, dict[str, float]] = {}
        try:
            with tempfile.TemporaryDirectory() as tmp, grpc_server(engine, Path(tmp)) as client:
                for ef in cfg["efs"]:
                    params = SearchParams(k=K, ef=ef, with_attributes=False)

                    def hnsw_one(i: int, ef: int = ef) -> list[int]:
                        index.set_ef(ef)
                        labels, _ = index.knn_query(queries[i], k=K, num_threads=1)
                        return labels[0].tolist()

                    def engine_one(i: int, params: Any = params) -> list[int]:
                        res = engine.search(coll, queries[i], params)
                        return [int(h.id) for h in res.hits]

                    def grpc_one(i: int, ef: int = ef) -> list[int]:
                        res = client.search(coll, queries[i], k=K, ef=ef, with_attributes=False)
                        return [int(h.id) for h in res]

                    per_system = {}
                    for system, fn in (("hnswlib", hnsw_one), ("sievedb_engine", engine_one),
                                       ("sievedb_grpc", grpc_one)):
                        for i in range(WARMUP):
                            fn(i)
                        nanos, found = time_each(fn, nq)
                        row = {"ef": ef, "system": system, "recall": recall_at_k(found, truth, K),
                               **latency_summary(nanos)}
                        per_system[system] = row
                        rows.append(row)
                        log.info("ef=%d %s p50 %.3f ms recall %.3f", ef, system, row["p50_ms"],
                                 row["recall"])
                    base_row = per_system["hnswlib"]
                    for system in ("sievedb_engine", "sievedb_grpc"):
                        r = per_system[system]
                        r["p50_ratio_vs_hnswlib"] = r["p50_ms"] / base_row["p50_ms"]
                        r["qps_ratio_vs_hnswlib"] = r["qps"] / base_row["qps"]
                        r["p50_added_ms"] = r["p50_ms"] - base_row["p50_ms"]

                    # Where the in-process time goes: the engine's own stage timings.
                    ex = SearchParams(k=K, ef=ef, with_attributes=False, explain=True)
                    search_ns, fetch_ns = [], []
                    for i in range(nq):
                        plan = engine.search(coll, queries[i], ex).plan
                        if plan is not None:
                            st = {s.name: s.nanos for s in plan.stages}
                            search_ns.append(st.get("search", 0))
                            fetch_ns.append(st.get("fetch", 0))
                    stages[ef] = {
                        "search_stage_p50_ms": float(np.median(search_ns)) / 1e6,
                        "fetch_stage_p50_ms": float(np.median(fetch_ns)) / 1e6,
                    }

                    # Batch throughput: the whole query set in one call, best of N repeats.
                    threads = _threads()

                    def hnsw_batch(ef: int = ef, threads: int = threads) -> list[list[int]]:
                        index.set_ef(ef)
                        labels, _ = index.knn_query(queries, k=K, num_threads=threads)
                        return labels.tolist()

                    def engine_batch(params: Any = params) -> list[list[int]]:
                        res = engine.search_batch(coll, queries, params)
                        return [[int(h.id) for h in r.hits] for r in res]

                    def grpc_batch(ef: int = ef) -> list[list[int]]:
                        res = client.search_batch(coll, queries, k=K, ef=ef,
                                                  with_attributes=False)
                        return [[int(h.id) for h in r] for r in res]

                    for system, bfn in (("hnswlib", hnsw_batch), ("sievedb_engine", engine_batch),
                                        ("sievedb_grpc", grpc_batch)):
                        bfn()

                        def repeat(_i: int, bfn: Any = bfn) -> list[list[int]]:
                            return bfn()  # type: ignore[no-any-return]

                        nanos, outs = time_each(repeat, int(cfg["batch_repeats"]))
                        best_s = float(nanos.min()) / 1e9
                        batch_rows.append({
                            "ef": ef, "system": system, "threads": threads, "batch": nq,
                            "qps": nq / best_s, "seconds_best": best_s,
                            "seconds_median": float(np.median(nanos)) / 1e9,
                            "recall": recall_at_k(outs[0], truth, K),
                        })
                    hb = next(r for r in batch_rows if r["ef"] == ef and r["system"] == "hnswlib")
                    for r in batch_rows:
                        if r["ef"] == ef:
                            r["qps_ratio_vs_hnswlib"] = r["qps"] / hb["qps"]
        finally:
            engine.close()
    doc = {
        "benchmark": "server_overhead",
        "command": command_line(),
        "config": {**cfg, "m": M, "ef_construction": EF_CONSTRUCTION, "k": K, "seed": SEED,
                   "metric": "cosine", "warmup_queries": WARMUP},
        "environment": env,
        "runtime_seconds": total.seconds,
        "builds": {"hnswlib": hnsw_build, "sievedb": sv_build},
        "single_query": rows,
        "engine_stages": stages,
        "batch": batch_rows,
    }
    write_results(name, doc, render_markdown(doc), results_dir)
    return doc


def render_markdown(doc: dict[str, Any]) -> str:
    cfg, b = doc["config"], doc["builds"]
    cached = b["sievedb"].get("cached") or b["hnswlib"].get("cached")
    intro = (
        f"{cfg['n']:,} × {cfg['dim']} float32, cosine, M={cfg['m']}, "
        f"ef_construction={cfg['ef_construction']}, k={cfg['k']}, {cfg['queries']} queries, "
        f"{cfg['warmup_queries']} warm-up queries per system. Total runtime "
        f"{doc['runtime_seconds'] / 60:.1f} min."
    )
    build = (
        f"Build: hnswlib `add_items` {b['hnswlib']['seconds']:.0f} s; sievedb `Engine.upsert` "
        f"in batches of 5000 {b['sievedb']['seconds']:.0f} s "
        f"({b['sievedb'].get('threads')} threads for both"
        f"{'; timings from the build that produced the cache' if cached else ''})."
    )
    out = [
        intro,
        "",
        build,
        "",
        "## Single query, sequential, one client thread",
        "",
    ]
    rows = [
        {**r, "p50 ratio": r.get("p50_ratio_vs_hnswlib", 1.0),
         "QPS ratio": r.get("qps_ratio_vs_hnswlib", 1.0),
         "added p50 ms": r.get("p50_added_ms", 0.0)}
        for r in doc["single_query"]
    ]
    out.append(markdown_table(rows, ["ef", "system", "recall", "p50_ms", "p99_ms", "mean_ms",
                                     "qps", "p50 ratio", "QPS ratio", "added p50 ms"]))
    out += ["", ("Engine stage timings (explain): median time inside the graph search vs "
                 "hit materialisation:"), ""]
    out.append(markdown_table(
        [{"ef": ef, **s} for ef, s in doc["engine_stages"].items()],
        ["ef", "search_stage_p50_ms", "fetch_stage_p50_ms"],
    ))
    out += ["", "## Batch: all queries in one call (best of repeats)", ""]
    out.append(markdown_table(doc["batch"], ["ef", "system", "threads", "batch", "recall", "qps",
                                             "seconds_best", "qps_ratio_vs_hnswlib"]))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="10k vectors, 200 queries")
    ap.add_argument("--name", default=None, help="result file stem")
    ap.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_server_logs()
    cfg = dict(QUICK if args.quick else FULL)
    name = args.name or ("server_overhead_quick" if args.quick else "server_overhead")
    doc = run(cfg, cache_dir=args.cache_dir, results_dir=args.results_dir, name=name)
    log.info("done in %.1f min", doc["runtime_seconds"] / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
