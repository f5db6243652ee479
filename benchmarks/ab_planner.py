"""Interleaved A/B of planner configurations (or of the traversal's membership test) on the
filtered benchmark's workload.

Each query runs once per configuration back to back (repeated `--reps` times), so machine
noise hits every configuration alike: the fair way to compare close alternatives on a
shared machine. The order of the configurations rotates from query to query, because the
first run of a query warms the caches for the others. Uses the cached collection, queries and ground truth of `bench_filtered`.

    python -m benchmarks.ab_planner [--variants correlated uncorrelated] [--buckets 50% 10%]
    python -m benchmarks.ab_planner --arms filter   # C++ label filter vs Python callback
    python -m benchmarks.ab_planner --arms column   # column tests vs sets for one-condition filters
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from sievedb_server.core.types import SearchParams
from sievedb_server.filters.parser import parse
from sievedb_server.filters.planner import PlannerConfig
from sievedb_server.index import native_filter

from benchmarks.bench_filtered import load_workload, open_sievedb
from benchmarks.datasets.synthetic_arxiv import make_dataset
from benchmarks.filtered_queries import Bucket, build_queries, ground_truth
from benchmarks.harness import CACHE_DIR, command_line, environment, markdown_table, write_results

# An arm: the planner configuration, and whether the C++ label filter may be used.
Arm = tuple[PlannerConfig, bool]
TRAVERSAL = PlannerConfig(postfilter_min=1.01)
ARMS: dict[str, dict[str, Arm]] = {
    # --arms planner: which strategy the planner should pick.
    "planner": {
        "planner (defaults)": (PlannerConfig(), True),
        "post-filter first": (PlannerConfig(postfilter_cost_ratio=1e9), True),
        "filtered traversal": (TRAVERSAL, True),
    },
    # --arms column: one-condition filters tested on the field's column, or built as a set.
    "column": {
        "column tests (default)": (PlannerConfig(), True),
        "sets only": (PlannerConfig(column_tests=False), True),
    },
    # --arms filter: the filtered traversal's membership test (traversal forced).
    "filter": {
        "C++ filter (default)": (TRAVERSAL, True),
        "Python callback (BitMap.__contains__)": (TRAVERSAL, False),
    },
}


def _use(coll: object, arm: Arm, native_available: bool) -> None:
    coll.planner, native = arm  # type: ignore[attr-defined]
    native_filter.NATIVE = native and native_available


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["correlated", "uncorrelated"])
    parser.add_argument("--buckets", nargs="+", default=["50%", "10%"])
    parser.add_argument("--ef", nargs="+", type=int, default=[16, 128])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--arms", choices=list(ARMS), default="planner")
    parser.add_argument("--out", default=None, help="result stem (default ab_<arms>)")
    args = parser.parse_args()
    args.out = args.out or {"planner": "ab_planner", "column": "ab_column_tests"}.get(
        args.arms, "ab_native_filter")
    configs = ARMS[args.arms]
    native_available = native_filter.NATIVE
    if args.arms == "filter" and not native_available:
        raise SystemExit(f"the C++ filter is not available: {native_filter.REASON}")
    wl = load_workload()
    ds, ix = wl["dataset"], wl["index"]
    n, dim, nqv, seed = int(ds["n"]), int(ds["dim"]), int(ds["query_vectors"]), int(ds["seed"])
    rows = []
    for variant in args.variants:
        data = make_dataset(n, dim, nqv, variant=variant, seed=seed)
        buckets = [Bucket(**b) for b in wl["buckets"]]
        fq = build_queries(data.attributes, nqv, buckets, int(wl["queries_per_bucket"]),
                           seed=seed)
        gt = ground_truth(data.base, data.queries, fq, 10, cache_dir=CACHE_DIR,
                          key_parts=("synthetic_arxiv", n, dim, nqv, seed, variant))
        name, engine, _ = open_sievedb(data, m=int(ix["m"]),
                                       ef_construction=int(ix["ef_construction"]),
                                       cache_dir=CACHE_DIR)
        coll = engine._collections[name]
        flts = [parse(q.expr) for q in fq]
        for b in args.buckets:
            idx = [i for i, q in enumerate(fq) if q.bucket == b]
            for ef in args.ef:
                lat: dict[str, list[int]] = defaultdict(list)
                rec: dict[str, list[float]] = defaultdict(list)
                params = SearchParams(k=10, ef=ef, with_attributes=False)
                names = list(configs)
                for rep in range(args.reps):
                    for j, i in enumerate(idx):
                        turn = (j + rep) % len(names)
                        for cname in names[turn:] + names[:turn]:
                            _use(coll, configs[cname], native_available)
                            t = time.perf_counter_ns()
                            res = engine.search(name, data.queries[fq[i].query_row], params,
                                                flts[i])
                            lat[cname].append(time.perf_counter_ns() - t)
                            if rep == 0:
                                want = set(gt[i][gt[i] >= 0].tolist())
                                got = {h.id for h in res.hits}
                                rec[cname].append(len(got & want) / max(len(want), 1))
                for cname in configs:
                    rows.append({
                        "variant": variant, "bucket": b, "ef": ef, "config": cname,
                        "qps": 1e9 / float(np.mean(lat[cname])),
                        "p50_ms": float(np.median(lat[cname])) / 1e6,
                        "recall@10": float(np.mean(rec[cname])),
                    })
                    print(rows[-1], flush=True)
        engine.close(checkpoint=False)
    native_filter.NATIVE = native_available
    table = markdown_table(rows, ["variant", "bucket", "ef", "config", "qps", "p50_ms",
                                  "recall@10"])
    write_results(args.out, {"command": command_line(), "params": vars(args), "rows": rows,
                             "environment": environment()}, table)


if __name__ == "__main__":
    main()
