"""Recall@10 of the default HNSW parameters against the exact path, as ef varies.

Backs the default `ef_search` (docs/PARAMETERS.md): the same seeded clustered data as
`tests/test_engine_core.py::test_hnsw_recall_on_clustered_data` (20k × 48, cosine, M=16,
ef_construction=200, 200 queries).

    python -m benchmarks.ef_recall [--n 20000] [--dim 48]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sievedb.synthetic import clustered_vectors
from sievedb_server.core.engine import Engine
from sievedb_server.core.types import CollectionSpec, Metric, SearchParams

from benchmarks.harness import command_line, environment, markdown_table, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=48)
    parser.add_argument("--efs", type=int, nargs="+", default=[32, 64, 100, 128, 200])
    args = parser.parse_args()
    data, _ = clustered_vectors(args.n, args.dim, seed=3)
    queries, _ = clustered_vectors(200, args.dim, seed=4)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(Path(tmp), sync=False, checkpoint_interval_s=3600)
        eng.create_collection(CollectionSpec("c", args.dim, Metric.COSINE))
        for s in range(0, args.n, 5000):
            eng.upsert("c", list(range(s, min(s + 5000, args.n))), data[s : s + 5000])
        exact = [{h.id for h in r.hits}
                 for r in eng.search_batch("c", queries, SearchParams(k=10, exact=True))]
        for ef in args.efs:
            lat, rec = [], []
            for q, want in zip(queries, exact):
                t = time.perf_counter_ns()
                hits = eng.search("c", q, SearchParams(k=10, ef=ef, with_attributes=False)).hits
                lat.append(time.perf_counter_ns() - t)
                rec.append(len({h.id for h in hits} & want) / 10)
            rows.append({"ef": ef, "recall@10": float(np.mean(rec)),
                         "p50_ms": float(np.median(lat)) / 1e6})
            print(rows[-1], flush=True)
        eng.close(checkpoint=False)
    write_results("ef_recall", {"command": command_line(), "params": vars(args), "rows": rows,
                                "environment": environment()},
                  markdown_table(rows, ["ef", "recall@10", "p50_ms"]))


if __name__ == "__main__":
    main()
