"""Where an in-process filtered search spends its time: the request path, layer by layer.

On the filtered benchmark's collection and queries (synthetic arXiv, 100,000 × 384), this
times one query at a time through successively more of sievedb's path, every layer on the
same queries:

- `search`: the bare search the plan ends in, with the allowed set resolved beforehand: the
  C++ filtered traversal (`native_filter`, column or label filter) for a graph plan, the C++
  exact scan (`native_scan.topk_among`) of the sorted allowed labels for an exact plan;
- `strategy`: the same through `query._graph` / `query._exact` (the wrappers: ef, label and
  score conversion);
- `run_query`: the planner's choice and the plan record around it (allowed set given);
- `resolve + run_query`: the filter resolved to its allowed set inside the timed call;
- `search_one`: the collection's read lock and the hits built from the result;
- `Engine.search`: the request checks (collection, parameters, query vector, filter against
  the schema and the limits).

Each layer is a block of one bucket's queries after reading 64 MiB to evict the caches, the
order of the layers rotated from pass to pass, so every layer starts cold, as in the filtered
benchmark; a query's time is its median over the passes and a row is the mean over queries.
`added` is what the layer costs beyond the one above it.

    python -m benchmarks.bench_request_path [--variant uncorrelated] [--passes 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sievedb_server.core import query as Q
from sievedb_server.core.types import SearchParams
from sievedb_server.filters.parser import parse
from sievedb_server.index import native_filter, native_scan

from benchmarks.bench_filtered import _Evictor, load_workload, open_sievedb
from benchmarks.datasets.synthetic_arxiv import make_dataset
from benchmarks.filtered_queries import Bucket, build_queries
from benchmarks.harness import CACHE_DIR, command_line, environment, markdown_table, write_results

BUCKETS = {"50%": 10, "10%": 10, "1%": None, "0.1%": None}  # bucket → ef (None: default)


def _layers(engine: Any, name: str, k: int, ef: int | None) -> dict[str, Callable[..., Any]]:
    coll = engine.collection(name)
    params = SearchParams(k=k, ef=ef, with_attributes=False, explain=False)
    ef_used = ef or coll.spec.hnsw.ef_search

    def bare(q: np.ndarray, allowed: Q.AllowedSet, flt: Any, raw: np.ndarray) -> Any:
        if len(allowed) * coll.dim <= coll.planner.exact_budget:
            return native_scan.topk_among(coll.vectors.data, allowed.sorted_labels(), q, k,
                                          l2=False)
        coll.graph.index.set_ef(ef_used)
        if allowed.column is not None:
            return native_filter.knn_query_column(coll.graph.index, q, k, allowed.column)
        return native_filter.knn_query(coll.graph.index, q, k, allowed.bitmap)

    def strategy(q: np.ndarray, allowed: Q.AllowedSet, flt: Any, raw: np.ndarray) -> Any:
        if len(allowed) * coll.dim <= coll.planner.exact_budget:
            return Q._exact(coll, q, k, allowed)
        return Q._graph(coll, q, k, ef_used, allowed)

    return {
        "search": bare,
        "strategy": strategy,
        "run_query": lambda q, allowed, flt, raw: Q.run_query(coll, q[0], params, allowed),
        "resolve + run_query": lambda q, allowed, flt, raw: Q.run_query(
            coll, q[0], params, Q.resolve_filter(coll, flt, force_exact=False)),
        "search_one": lambda q, allowed, flt, raw: coll.search_one(q[0], params, flt),
        "Engine.search": lambda q, allowed, flt, raw: engine.search(name, raw, params, flt),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="uncorrelated", choices=["correlated", "uncorrelated"])
    ap.add_argument("--passes", type=int, default=7)
    args = ap.parse_args()
    if not (native_filter.NATIVE and native_scan.AVAILABLE):
        raise SystemExit("the C++ extensions are not built")
    wl = load_workload()
    ds, ix, k = wl["dataset"], wl["index"], int(wl["k"])
    data = make_dataset(int(ds["n"]), int(ds["dim"]), int(ds["query_vectors"]),
                        variant=args.variant, seed=int(ds["seed"]))
    fq = build_queries(data.attributes, int(ds["query_vectors"]),
                       [Bucket(**b) for b in wl["buckets"]], int(wl["queries_per_bucket"]),
                       seed=int(ds["seed"]))
    name, engine, _ = open_sievedb(data, m=int(ix["m"]),
                                   ef_construction=int(ix["ef_construction"]),
                                   cache_dir=CACHE_DIR)
    coll = engine.collection(name)
    queries = data.queries / np.linalg.norm(data.queries, axis=1, keepdims=True)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    evict = _Evictor(64)
    rows = []
    try:
        for bucket, ef in BUCKETS.items():
            idx = [i for i, q in enumerate(fq) if q.bucket == bucket]
            flts = {i: parse(fq[i].expr) for i in idx}
            with coll._index_lock.read():
                allowed = {i: Q.resolve_filter(coll, flts[i], force_exact=False) for i in idx}
            layers = _layers(engine, name, k, ef)
            names = list(layers)
            spent = {n: np.zeros((args.passes, len(idx)), dtype=np.int64) for n in names}
            for p in range(args.passes):
                for j in range(len(names)):
                    layer = names[(j + p) % len(names)]
                    fn = layers[layer]
                    evict()
                    for col, i in enumerate(idx):
                        row = fq[i].query_row
                        q, raw = queries[row : row + 1], data.queries[row]
                        t0 = time.perf_counter_ns()
                        fn(q, allowed[i], flts[i], raw)
                        spent[layer][p, col] = time.perf_counter_ns() - t0
            prev = 0.0
            for layer in names:
                us = float(np.median(spent[layer], axis=0).mean()) / 1e3
                rows.append({"bucket": bucket, "ef": ef or "default", "layer": layer,
                             "mean_us": us, "added_us": us - prev if prev else us})
                prev = us
                print(rows[-1], flush=True)
    finally:
        engine.close()
    write_results(
        f"request_path_{args.variant}",
        {"command": command_line(), "params": vars(args), "buckets": BUCKETS, "rows": rows,
         "environment": environment()},
        f"\nThe `{args.variant}` variant of the filtered benchmark, {len(BUCKETS)} buckets × "
        "100 queries, k = 10, one thread. Each layer adds part of sievedb's request path to "
        "the one above it (see the script's docstring); every layer runs a bucket's queries "
        "as a block after the caches are evicted, in an order rotated per pass; `mean_us` is "
        f"the mean over queries of each query's median over {args.passes} passes; `added_us` "
        "is the layer's cost beyond the one above it. `search` is the bare C++ filtered "
        "traversal (graph plans) or exact scan (exact plans) with the allowed set given.\n\n"
        + markdown_table(rows, ["bucket", "ef", "layer", "mean_us", "added_us"]),
    )


if __name__ == "__main__":
    main()
