"""Exact-scan gathers from the vector file: a fresh mapping against a pre-faulted one.

`VectorArray` maps `vectors.f32` and touches one float per page of the stored rows
(`_prefault`). Without that, the first touch of each page by this process is a minor fault,
and an exact scan gathers rows scattered over the file. This times the gather + score of a
small allowed set (46 rows, the median of the filtered benchmark's 10-100 bucket) on a fresh
`VectorArray` with and without the pre-fault, and on an anonymous in-memory copy. The file is
in the page cache for every arm (it was just written and read); only the page tables differ.

    python -m benchmarks.bench_prefault [--n 100000] [--dim 384] [--rows 46] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sievedb_server.index.vectors import VectorArray

from benchmarks.harness import command_line, environment, markdown_table, write_results


def _gathers(data: np.ndarray, sets: list[np.ndarray], q: np.ndarray) -> np.ndarray:
    out = np.empty(len(sets), dtype=np.int64)
    for i, idx in enumerate(sets):
        t = time.perf_counter_ns()
        np.take(data, idx, axis=0) @ q
        out[i] = time.perf_counter_ns() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--rows", type=int, default=46)
    ap.add_argument("--sets", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    q = rng.standard_normal(args.dim).astype(np.float32)
    times: dict[str, list[np.ndarray]] = {"fresh mapping": [], "pre-faulted mapping": [],
                                          "anonymous copy": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.f32"
        va = VectorArray(path, args.dim, args.n, keep_sqnorms=False)
        for start in range(0, args.n, 10_000):
            stop = min(args.n, start + 10_000)
            va.write(np.arange(start, stop),
                     rng.standard_normal((stop - start, args.dim)).astype(np.float32))
        va._mm.flush()  # type: ignore[union-attr]
        anon = np.array(va.data[: args.n])  # also reads the whole file: page cache is warm
        del va
        for rnd in range(args.rounds):
            # Fresh random row sets per round and arm: rows never gathered before by this map.
            for arm in (list(times) if rnd % 2 == 0 else list(times)[::-1]):
                sets = [np.sort(rng.choice(args.n, args.rows, replace=False))
                        for _ in range(args.sets)]
                if arm == "anonymous copy":
                    times[arm].append(_gathers(anon, sets, q))
                    continue
                prefault = VectorArray._prefault
                if arm == "fresh mapping":
                    VectorArray._prefault = lambda self, rows: None  # type: ignore[method-assign]
                try:
                    fresh = VectorArray(path, args.dim, args.n, keep_sqnorms=False)
                finally:
                    VectorArray._prefault = prefault  # type: ignore[method-assign]
                times[arm].append(_gathers(fresh.data, sets, q))
                del fresh
    rows = []
    for arm, runs in times.items():
        us = np.concatenate(runs) / 1e3
        rows.append({"arm": arm, "median_us": float(np.median(us)), "mean_us": float(us.mean()),
                     "p99_us": float(np.percentile(us, 99)), "gathers": int(us.size)})
        print(rows[-1], flush=True)
    text = (f"{args.rows}-row gather + score (np.take, gemv) from {args.n} × {args.dim} float32, "
            f"{args.sets} random row sets per arm and round, {args.rounds} rounds "
            "(arm order alternating).\n\n"
            + markdown_table(rows, ["arm", "median_us", "mean_us", "p99_us", "gathers"]))
    write_results("prefault", {"command": command_line(), "params": vars(args), "rows": rows,
                               "environment": environment()}, text)


if __name__ == "__main__":
    main()
