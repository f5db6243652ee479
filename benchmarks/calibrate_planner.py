"""Calibrate the planner's thresholds: cost of each strategy as a function of selectivity.

For one seeded clustered collection (default 100k × 384, cosine) this forces each strategy
(exact scan of the allowed set, HNSW with the filter in the traversal, HNSW + post-filter)
through `PlannerConfig` overrides, next to the default planner, at a ladder of selectivities, with random (uncorrelated)
and cluster-correlated allowed sets, and reports median latency and recall@10 against the
exact answer. The crossover points are the planner's constants (docs/PLANNER.md).

    python benchmarks/calibrate_planner.py [--n 100000] [--dim 384] [--queries 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sievedb.synthetic import clustered_vectors
from sievedb_server.core.engine import Engine
from sievedb_server.core.types import (
    CollectionSpec,
    FieldSpec,
    FieldType,
    HnswParams,
    Metric,
    SearchParams,
)
from sievedb_server.filters.model import Filter, Range
from sievedb_server.filters.planner import PlannerConfig

from benchmarks.harness import command_line, environment, markdown_table, write_results

FORCED = {
    "exact": PlannerConfig(exact_budget=10**12),
    "hnsw_filtered": PlannerConfig(exact_budget=0, postfilter_min=1.01),
    # Post-filter only; when short it falls through to filtered traversal, never to exact.
    "hnsw_postfilter": PlannerConfig(exact_budget=0, postfilter_min=0.0,
                                     postfilter_max_fetch=10**6, fallback_exact_budget=0),
    "planner (defaults)": PlannerConfig(),
}
SELECTIVITIES = [0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.003, 0.001]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="calibrate_planner")
    args = parser.parse_args()

    # Queries are held out from the same draw as the base (same clusters and subspace).
    allv, alla = clustered_vectors(args.n + args.queries, args.dim, seed=args.seed)
    vecs, assign, queries = allv[: args.n], alla[: args.n], allv[args.n :]
    rng = np.random.default_rng(args.seed)
    # `r` is uniform random (uncorrelated with the vectors); `c` ranks points by cluster so a
    # low range selects whole clusters (correlated with the vectors).
    r = rng.random(args.n)
    cluster_rank = np.argsort(np.argsort(assign * 1.0 + rng.random(args.n) * 1e-3))
    c = cluster_rank / args.n
    attrs = [{"r": float(a), "c": float(b)} for a, b in zip(r, c)]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(Path(tmp), sync=False, checkpoint_interval_s=3600)
        eng.create_collection(
            CollectionSpec("cal", args.dim, Metric.COSINE, HnswParams(),
                           (FieldSpec("r", FieldType.FLOAT), FieldSpec("c", FieldType.FLOAT)))
        )
        t0 = time.perf_counter_ns()
        for s in range(0, args.n, 5000):
            eng.upsert("cal", list(range(s, min(s + 5000, args.n))), vecs[s : s + 5000],
                       attrs[s : s + 5000])
        load_s = (time.perf_counter_ns() - t0) / 1e9
        coll = eng._collections["cal"]
        for field in ("r", "c"):
            for sel in SELECTIVITIES:
                flt = Filter(must=(Range(field, lt=sel),))
                truth = [
                    {h.id for h in eng.search("cal", q, SearchParams(k=10, exact=True,
                                                                     with_attributes=False),
                                              flt).hits}
                    for q in queries
                ]
                for name, cfg in FORCED.items():
                    coll.planner = cfg
                    lat, rec, strategies = [], [], set()
                    for q, want in zip(queries, truth):
                        t = time.perf_counter_ns()
                        res = eng.search("cal", q, SearchParams(k=10, with_attributes=False,
                                                                explain=True), flt)
                        lat.append(time.perf_counter_ns() - t)
                        strategies.add(res.plan.strategy)
                        rec.append(len({h.id for h in res.hits} & want) / max(len(want), 1))
                    rows.append({
                        "correlated": field == "c",
                        "selectivity": sel,
                        "strategy": name,
                        "plans": sorted(strategies),
                        "p50_ms": float(np.median(lat)) / 1e6,
                        "recall@10": float(np.mean(rec)),
                    })
                    print(rows[-1], flush=True)
        eng.close(checkpoint=False)

    table = markdown_table(
        [{**r, "plans": ",".join(r["plans"])} for r in rows],
        ["correlated", "selectivity", "strategy", "p50_ms", "recall@10", "plans"],
    )
    write_results(
        args.out,
        {
            "command": command_line(),
            "params": vars(args),
            "load_seconds": load_s,
            "rows": rows,
            "environment": environment(),
        },
        table,
    )


if __name__ == "__main__":
    main()
