"""hnswlib filtered search: the C++ label filter against Python callbacks, per query.

    python -m benchmarks.bench_native_filter [--n 100000] [--dim 128] [--queries 300]

One seeded random index (n x dim, L2, M 16, ef_construction 100), single-threaded
`knn_query(k=10)` per query, for each selectivity (50 / 10 / 1 % of labels allowed, a random
set) and ef (16 / 64). Variants, round-robin per query so noise hits all alike:

* `none` — no filter (the unfiltered cost, for scale);
* `py_bytearray` — `lambda label: bits[label] == 1` over a bytearray (the cheapest Python one);
* `py_bitmap` — `BitMap.__contains__` (what sievedb's query path passed so far);
* `native` — sievedb's C++ filter via `native_filter.installed(bitmap)`, including building the
  membership bits from the BitMap on every query (as `HnswIndex.search(allowed=)` does);
* `native_prebuilt` — the C++ filter with the bits built once (the search alone).

Medians in milliseconds. The filtered variants must return identical labels (checked).
"""

from __future__ import annotations

import argparse
import time

import hnswlib
import numpy as np
from pyroaring import BitMap
from sievedb_server.index import native_filter

from benchmarks.harness import command_line, environment, markdown_table, write_results

VARIANTS = ("none", "py_bytearray", "py_bitmap", "native", "native_prebuilt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--build-threads", type=int, default=2)
    args = parser.parse_args()
    if not native_filter.NATIVE:
        raise SystemExit(f"the C++ filter is not on its fast path: {native_filter.REASON}")

    rng = np.random.default_rng(0)
    base = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    t = time.perf_counter()
    index = hnswlib.Index(space="l2", dim=args.dim)
    index.init_index(max_elements=args.n, M=16, ef_construction=100, random_seed=1)
    index.add_items(base, np.arange(args.n), num_threads=args.build_threads)
    build_s = time.perf_counter() - t
    print(f"built {args.n} x {args.dim} in {build_s:.1f} s", flush=True)

    rows = []
    for selectivity in (0.5, 0.1, 0.01):
        mask = rng.random(args.n) < selectivity
        bm = BitMap(np.flatnonzero(mask).astype(np.uint32))
        bits = bytearray(mask.astype(np.uint8).tobytes())
        prebuilt = native_filter.membership(bm)
        for ef in (16, 64):
            index.set_ef(max(ef, args.k))
            spent: dict[str, list[int]] = {v: [] for v in VARIANTS}
            mismatches = 0
            for q in queries:
                found = {}
                for variant in VARIANTS:
                    t0 = time.perf_counter_ns()
                    if variant == "none":
                        labels, _ = index.knn_query(q, k=args.k, num_threads=1)
                    elif variant == "py_bytearray":
                        labels, _ = index.knn_query(
                            q, k=args.k, num_threads=1, filter=lambda lb: bits[lb] == 1
                        )
                    elif variant == "py_bitmap":
                        labels, _ = index.knn_query(
                            q, k=args.k, num_threads=1, filter=bm.__contains__
                        )
                    else:
                        source = bm if variant == "native" else prebuilt
                        with native_filter.installed(source) as fn:
                            labels, _ = index.knn_query(q, k=args.k, num_threads=1, filter=fn)
                    spent[variant].append(time.perf_counter_ns() - t0)
                    found[variant] = labels
                ref = found["py_bitmap"]
                mismatches += sum(
                    not np.array_equal(found[v], ref) for v in VARIANTS if v != "none"
                )
            medians = {v: float(np.median(spent[v])) / 1e6 for v in VARIANTS}
            row: dict[str, object] = {"selectivity": selectivity, "ef": ef}
            row.update({f"{v}_ms": ms for v, ms in medians.items()})
            row["speedup_vs_py_bitmap"] = medians["py_bitmap"] / medians["native"]
            row["mismatches"] = mismatches
            rows.append(row)
            print(row, flush=True)

    columns = ["selectivity", "ef", *(f"{v}_ms" for v in VARIANTS), "speedup_vs_py_bitmap",
               "mismatches"]
    write_results(
        "native_filter",
        {
            "command": command_line(),
            "params": vars(args),
            "index": {"space": "l2", "M": 16, "ef_construction": 100, "build_s": build_s},
            "native": {"NATIVE": native_filter.NATIVE, "reason": native_filter.REASON},
            "note": "per-query medians (ms), variants round-robin per query, single thread; "
                    "native includes building the membership bits from the BitMap",
            "rows": rows,
            "environment": environment(),
        },
        "\nPer-query median milliseconds, k=10, one thread; variants interleaved per query. "
        "`native` includes building the membership bits from the BitMap each query; "
        "`native_prebuilt` is the search alone. `mismatches`: filtered results differing "
        "from `py_bitmap` (must be 0).\n\n"
        + markdown_table(rows, columns),
    )


if __name__ == "__main__":
    main()
