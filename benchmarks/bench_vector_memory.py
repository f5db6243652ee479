"""Exact scans from the vector array: a memory-mapped file against anonymous memory.

`VectorArray` keeps the vectors in anonymous memory, written through to `vectors.f32`; until
2026-12-03 it memory-mapped that file (pre-faulted). Both hold the same rows; they differ in
page size: the kernel backs a large anonymous allocation with transparent huge pages where it
can (numpy asks for them), a mapped regular file with 4 KiB pages, so a scan of rows scattered
over the array misses the TLB about once per row. This times the exact strategy's scan
(`native_scan.topk_among`, k = 10, one thread) of random allowed sets of 46 / 150 / 1,000
rows (the medians of the filtered benchmark's 10-100, 0.1 % and 1 % buckets) in both, the two
alternating per query, each call on a fresh random set (rows not in cache). The file is in
the page cache and its mapping pre-faulted, as the old `VectorArray` left it.

    python -m benchmarks.bench_vector_memory [--n 100000] [--dim 384] [--queries 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sievedb_server.index import native_scan
from sievedb_server.index.vectors import VectorArray

from benchmarks.harness import command_line, environment, markdown_table, write_results

SIZES = (46, 150, 1_000)


def _anon_huge_kb() -> int | None:
    """This process's anonymous memory on transparent huge pages, in KiB (Linux)."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    if not native_scan.AVAILABLE:
        raise SystemExit("sievedb_server._native_scan is not built")
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.f32"
        va = VectorArray(path, args.dim, args.n, keep_sqnorms=False)
        for start in range(0, args.n, 10_000):
            block = rng.standard_normal((min(10_000, args.n - start), args.dim))
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            va.write(np.arange(start, start + len(block)), block.astype(np.float32))
        va.flush()
        mapped = np.memmap(path, dtype="<f4", mode="r", shape=(va.capacity, args.dim))
        file_view = np.asarray(mapped)
        np.add.reduce(file_view.reshape(-1)[:: 4096 // 4])  # pre-fault, as the old array did
        arms = {"mapped file": file_view, "anonymous memory": va.data}
        for size in SIZES:
            spent: dict[str, list[int]] = {a: [] for a in arms}
            for i in range(args.queries):
                order = list(arms) if i % 2 == 0 else list(reversed(arms))
                for arm in order:
                    labels = np.sort(rng.choice(args.n, size, replace=False)).astype(np.uint32)
                    t0 = time.perf_counter_ns()
                    native_scan.topk_among(arms[arm], labels, queries[i : i + 1], 10, l2=False)
                    spent[arm].append(time.perf_counter_ns() - t0)
            med = {a: float(np.median(v)) / 1e3 for a, v in spent.items()}
            row = {
                "allowed": size,
                "mapped_file_us": med["mapped file"],
                "anonymous_us": med["anonymous memory"],
                "speedup": med["mapped file"] / med["anonymous memory"],
            }
            rows.append(row)
            print(row, flush=True)
        huge_kb = _anon_huge_kb()
        del file_view, mapped
        va.close()
    write_results(
        "vector_memory",
        {"command": command_line(), "params": vars(args), "rows": rows,
         "anon_huge_pages_kb": huge_kb, "environment": environment()},
        "\nPer-query median microseconds of the exact scan (`native_scan.topk_among`, k=10, "
        "one thread) over a fresh random allowed set per call, the two arms alternating per "
        f"query; {args.n:,} × {args.dim} unit vectors. `speedup` = mapped file / anonymous "
        "memory. The process had "
        f"{'an unknown amount' if huge_kb is None else f'{huge_kb / 1024:,.0f} MiB'} of "
        "anonymous memory on transparent huge pages at the end of the run.\n\n"
        + markdown_table(rows, ["allowed", "mapped_file_us", "anonymous_us", "speedup"]),
    )


if __name__ == "__main__":
    main()
