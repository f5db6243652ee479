"""HNSW searches with the graph's level-0 block on 4 KiB pages against transparent huge pages.

`HnswIndex` asks the kernel to back hnswlib's level-0 block (links, vectors, labels) with huge
pages when it allocates it (server/sievedb_server/index/hugepages.py). This loads one saved
graph twice through `HnswIndex.try_load`, once with that turned off (`SIEVEDB_HUGEPAGES=0`)
and once on, and times the same searches on both, one thread, the two alternating per query
(order flipped every query), each query a held-out vector not searched before on that copy:

- unfiltered `knn_query` at ef 10, 64 and 128;
- the filtered traversal with sievedb's C++ label filter (`native_filter.knn_query`) over a
  seeded random allowed set of 50 % and 10 % of the points, ef 10 and 64.

The graph is the filtered benchmark's (synthetic arXiv, uncorrelated, 100,000 × 384, M 16,
ef_construction 200), built once and cached like that benchmark's baselines.

    python -m benchmarks.bench_hugepages [--queries 1000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from pyroaring import BitMap
from sievedb_server.core.types import HnswParams, Metric
from sievedb_server.index import hugepages, native_filter
from sievedb_server.index.hnsw import HnswIndex, IndexStamp

from benchmarks.bench_filtered import load_workload
from benchmarks.datasets.synthetic_arxiv import make_dataset
from benchmarks.harness import command_line, environment, markdown_table, write_results
from benchmarks.systems import hnswlib_index

SEARCHES = [("unfiltered", None, ef) for ef in (10, 64, 128)] + [
    ("filtered", sel, ef) for sel in (0.5, 0.1) for ef in (10, 64)
]


def _anon_huge_mib() -> float | None:
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _load(folder: Path, n: int, dim: int, m: int, efc: int, huge: bool) -> HnswIndex:
    os.environ["SIEVEDB_HUGEPAGES"] = "1" if huge else "0"
    try:
        graph = HnswIndex(folder, dim, Metric.COSINE, HnswParams(m=m, ef_construction=efc))
        stamp = IndexStamp(watermark=0, capacity=n, dim=dim, space="ip", m=m,
                           ef_construction=efc)
        if not graph.try_load(stamp):
            raise SystemExit(f"could not load the graph in {folder}")
    finally:
        os.environ.pop("SIEVEDB_HUGEPAGES", None)
    return graph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    if not native_filter.NATIVE:
        raise SystemExit(f"sievedb_server._native_filter is not built: {native_filter.REASON}")
    wl = load_workload()
    ds, ix = wl["dataset"], wl["index"]
    n, dim, m, efc = int(ds["n"]), int(ds["dim"]), int(ix["m"]), int(ix["ef_construction"])
    data = make_dataset(n, dim, int(ds["query_vectors"]), variant="uncorrelated",
                        seed=int(ds["seed"]))
    queries = data.queries / np.linalg.norm(data.queries, axis=1, keepdims=True)
    queries = np.ascontiguousarray(queries[: args.queries], dtype=np.float32)
    _, built = hnswlib_index(data.base, m=m, ef_construction=efc)
    rng = np.random.default_rng(0)
    allowed = {
        sel: BitMap(np.sort(rng.choice(n, int(n * sel), replace=False)).astype(np.uint32))
        for sel in {s for _, s, _ in SEARCHES if s is not None}
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        arms: dict[str, HnswIndex] = {}
        for arm, huge in (("4 KiB pages", False), ("huge pages", True)):
            folder = Path(tmp) / arm.replace(" ", "_")
            folder.mkdir()
            (folder / "index.hnsw").symlink_to(Path(built["path"]).resolve())
            arms[arm] = _load(folder, n, dim, m, efc, huge)
        huge_mib = {a: g.huge_page_bytes / 2**20 for a, g in arms.items()}
        for search, sel, ef in SEARCHES:
            spent: dict[str, list[int]] = {a: [] for a in arms}
            for g in arms.values():
                g.index.set_ef(ef)
            for i in range(len(queries)):
                order = list(arms) if i % 2 == 0 else list(reversed(arms))
                q = queries[i : i + 1]
                for arm in order:
                    index = arms[arm].index
                    t0 = time.perf_counter_ns()
                    if sel is None:
                        index.knn_query(q, k=10, num_threads=1)
                    else:
                        native_filter.knn_query(index, q, 10, allowed[sel], 1)
                    spent[arm].append(time.perf_counter_ns() - t0)
            med = {a: float(np.median(v)) / 1e3 for a, v in spent.items()}
            row = {
                "search": search,
                "allowed": "all" if sel is None else f"{sel:.0%}",
                "ef": ef,
                "small_pages_us": med["4 KiB pages"],
                "huge_pages_us": med["huge pages"],
                "speedup": med["4 KiB pages"] / med["huge pages"],
            }
            rows.append(row)
            print(row, flush=True)
        process_huge = _anon_huge_mib()
    write_results(
        "hugepages",
        {"command": command_line(), "params": vars(args), "rows": rows,
         "graph_on_huge_pages_mib": huge_mib, "process_anon_huge_pages_mib": process_huge,
         "thp_mode": hugepages.thp_mode(), "environment": environment()},
        "\nPer-query median microseconds of one HNSW search (k = 10, one thread) on two copies "
        f"of the same graph ({n:,} × {dim}, M {m}, ef_construction {efc}), loaded by "
        "`HnswIndex` with huge pages off and on, alternating per query over "
        f"{len(queries):,} held-out queries. Filtered rows use the C++ label filter over a "
        "seeded random allowed set. `speedup` = 4 KiB pages / huge pages. Kernel THP mode "
        f"`{hugepages.thp_mode()}`; level-0 block on huge pages after loading: "
        + ", ".join(f"{a} {v:,.0f} MiB" for a, v in huge_mib.items())
        + ".\n\n"
        + markdown_table(rows, ["search", "allowed", "ef", "small_pages_us", "huge_pages_us",
                                "speedup"]),
    )


if __name__ == "__main__":
    main()
