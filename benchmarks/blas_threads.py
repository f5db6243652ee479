"""Exact-scan kernels with numpy's default BLAS threads vs one thread, same process, one run.

The server caps BLAS at one thread (`sievedb serve --blas-threads 1`); this records why:
the gather + mat-vec of an exact scan, at the row counts the planner sends to it, timed with
the library default and with `threadpool_limits(1)`, interleaved.

    python -m benchmarks.blas_threads [--n 100000] [--dim 384]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from benchmarks.harness import command_line, environment, markdown_table, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    base = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    q = rng.standard_normal(args.dim).astype(np.float32)
    rows = []
    for count in (1_000, 2_500, 10_000):
        labels = np.sort(rng.choice(args.n, count, replace=False))
        times: dict[str, list[int]] = {"default": [], "1 thread": []}
        for _ in range(args.reps):
            for mode, spent in times.items():
                limit = threadpool_limits(1, user_api="blas") if mode == "1 thread" else None
                t = time.perf_counter_ns()
                scores = q[None, :] @ base[labels].T
                np.argpartition(-scores[0], 9)
                spent.append(time.perf_counter_ns() - t)
                if limit is not None:
                    limit.restore_original_limits()
        for mode, ts in times.items():
            rows.append({"rows": count, "blas": mode,
                         "p50_us": float(np.median(ts)) / 1e3,
                         "p90_us": float(np.percentile(ts, 90)) / 1e3,
                         "p99_us": float(np.percentile(ts, 99)) / 1e3})
            print(rows[-1], flush=True)
    write_results(
        "blas_threads",
        {"command": command_line(), "params": vars(args), "rows": rows,
         "blas": [{k: v for k, v in info.items() if k != "filepath"}
                  for info in threadpool_info()],
         "environment": environment()},
        markdown_table(rows, ["rows", "blas", "p50_us", "p90_us", "p99_us"]),
    )


if __name__ == "__main__":
    main()
