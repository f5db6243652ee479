"""Exact top-k among an allowed set: the C++ in-place scan against the numpy path, per query.

    python -m benchmarks.bench_native_scan [--n 100000] [--dim 384] [--queries 200]

One seeded array of n unit vectors (dim 384, as the filtered benchmark), single-threaded, k=10.
For each allowed-set size (a random sorted subset of the labels) every query is answered by

* `numpy` — `index.exact.topk_among`: gather the rows (`np.take`), mat-vec, partition; above
  half the labels, a mat-vec over the contiguous prefix instead of the gather;
* `native` — `index.native_scan.topk_among`: each allowed row scored where it lies (C++,
  16 partial sums per dot product, the next rows prefetched), top-k kept by selection;
* `sq8` — `index.native_scan.topk_among_sq8`: the same answer from each row's 8-bit codes
  (`vectors.sq8_encode`, a quarter of the bytes) with a proven error bound, rescoring from
  float32 only the rows that can still make the top k (`rescored` is their share). What the
  server runs from `native_scan.SQ8_MIN_ROWS` allowed rows up.

Variants alternate per query (the order rotated), so slow spells of the machine hit both, and
every timed call gets its own random allowed set, so its rows come from memory rather than
from the cache the previous call filled (as in a stream of queries with different filters).
Medians in microseconds; `mismatches` counts queries whose top-k labels differ between numpy
and native (float rounding can swap near-ties; must stay ~0); `sq8_mismatches` those where
sq8 differs from native in labels or scores at all (must be 0: it is exact by construction).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits
from sievedb_server.core.types import Metric
from sievedb_server.index import exact, native_scan
from sievedb_server.index.vectors import sq8_encode

from benchmarks.harness import command_line, environment, markdown_table, write_results

SIZES = (20, 50, 150, 500, 1_000, 2_600, 10_000, 50_000, 100_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    if not native_scan.AVAILABLE:
        raise SystemExit("sievedb_server._native_scan is not built")

    rng = np.random.default_rng(0)
    base = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    def run_numpy(labels: np.ndarray, q: np.ndarray) -> np.ndarray:
        return exact.topk_among(base, labels, q, args.k, Metric.COSINE)[0]

    def run_native(labels: np.ndarray, q: np.ndarray) -> np.ndarray:
        return native_scan.topk_among(base, labels, q, args.k, l2=False)[0]

    codes, meta = sq8_encode(base)
    share: list[float] = []

    def run_sq8(labels: np.ndarray, q: np.ndarray) -> np.ndarray:
        found, _, rescored = native_scan.topk_among_sq8(base, codes, meta, labels, q, args.k,
                                                        l2=False)
        share.append(rescored / len(labels))
        return found

    variants = {"numpy": run_numpy, "native": run_native, "sq8": run_sq8}
    rows = []
    blas = threadpool_limits(1, user_api="blas")  # both on one thread, as the server runs them
    for size in (s for s in SIZES if s <= args.n):
        spent: dict[str, list[int]] = {v: [] for v in variants}
        mismatches = sq8_mismatches = 0
        share.clear()
        names = list(variants)
        for i in range(args.queries):
            q = queries[i : i + 1]
            order = names[i % 3 :] + names[: i % 3]
            for name in order:
                # A fresh allowed set per call: its rows come from memory, as in a stream of
                # queries with different filters (the same set twice would find them cached).
                labels = np.sort(rng.choice(args.n, size, replace=False)).astype(np.uint32)
                t0 = time.perf_counter_ns()
                variants[name](labels, q)
                spent[name].append(time.perf_counter_ns() - t0)
            # Same answer on one more set (timed calls above use different sets).
            labels = np.sort(rng.choice(args.n, size, replace=False)).astype(np.uint32)
            mismatches += not np.array_equal(run_numpy(labels, q), run_native(labels, q))
            plain = native_scan.topk_among(base, labels, q, args.k, l2=False)
            sq8 = native_scan.topk_among_sq8(base, codes, meta, labels, q, args.k, l2=False)
            sq8_mismatches += not (np.array_equal(plain[0], sq8[0])
                                   and np.array_equal(plain[1], sq8[1]))
        med = {v: float(np.median(spent[v])) / 1e3 for v in variants}
        row = {
            "allowed": size,
            "numpy_us": med["numpy"],
            "native_us": med["native"],
            "speedup": med["numpy"] / med["native"],
            "mismatches": mismatches,
            "sq8_us": med["sq8"],
            "sq8_speedup": med["native"] / med["sq8"],
            "rescored": float(np.mean(share)),
            "sq8_mismatches": sq8_mismatches,
        }
        rows.append(row)
        print(row, flush=True)
    blas.restore_original_limits()

    write_results(
        "native_scan",
        {
            "command": command_line(),
            "params": vars(args),
            "note": "per-query medians (us), variants alternating per query, one thread",
            "rows": rows,
            "environment": environment(),
        },
        "\nPer-query median microseconds, k=10, cosine (dot product on unit vectors), one "
        "thread (numpy's BLAS limited to one, as `sievedb serve` does by default); the "
        "variants alternate per query, each call on a fresh random allowed set (rows not in "
        "cache). `speedup` = numpy / native; `sq8_speedup` = native / sq8; `rescored`: the "
        "share of allowed rows sq8 rescored from float32. `mismatches`: queries whose top-k "
        "labels differ between numpy and native (must be ~0); `sq8_mismatches`: queries where "
        "sq8's labels or scores differ from native's at all (must be 0).\n\n"
        + markdown_table(rows, ["allowed", "numpy_us", "native_us", "speedup", "mismatches",
                                "sq8_us", "sq8_speedup", "rescored", "sq8_mismatches"]),
    )


if __name__ == "__main__":
    main()
