"""`sievedb bench WORKLOAD [args...]`: run one of the benchmark workloads of a source checkout.

The benchmark suite lives in the repository's `benchmarks/` folder (workloads as YAML, results
under `benchmarks/results/`); it is not part of the installed package. This command finds it
(the current folder or `--repo`) and runs the named workload with the remaining arguments,
exactly as `python -m benchmarks.<module> ...` would. Install the extra first:
`pip install -e '.[bench]'`.

`sievedb bench suite benchmarks/workloads/fanns_synthetic_100k.yaml` runs the FANNS suite
(`benchmarks/suite.py`): filtered workloads by selectivity bucket, sievedb against the
baselines and peers, tuned per bucket, with Markdown reports and recall-vs-QPS plots.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["WORKLOADS", "add_parser", "run"]

WORKLOADS = {
    "suite": ("suite", "the FANNS suite: WORKLOAD.yaml (e.g. benchmarks/workloads/fanns_*.yaml)"),
    "filtered": ("bench_filtered", "filtered k-NN by selectivity bucket vs hnswlib/FAISS/numpy"),
    "overhead": ("bench_server_overhead", "unfiltered search: gRPC and engine vs raw hnswlib"),
    "bulk-load": ("bench_bulk_load", "end-to-end bulk load vs raw hnswlib add_items"),
    "planner": ("calibrate_planner", "each planner strategy forced, by selectivity"),
    "planner-ab": ("ab_planner", "interleaved A/B of planner configurations"),
    "blas": ("blas_threads", "exact-scan kernels with default vs single-threaded BLAS"),
    "snapshot": ("bench_snapshot", "online snapshot: duration, restore, latency during it"),
    "load": ("load_test", "32 concurrent clients: filtered searches + upserts, RSS over time"),
}


def add_parser(subparsers: Any) -> None:
    listing = "\n".join(f"  {name:11s} {help_}" for name, (_, help_) in WORKLOADS.items())
    p = subparsers.add_parser(
        "bench",
        help="run a benchmark workload from a source checkout",
        description=f"{__doc__}\nworkloads:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("workload", choices=sorted(WORKLOADS), help="which benchmark")
    p.add_argument("--repo", type=Path, default=Path.cwd(),
                   help="the source checkout holding benchmarks/ (default: current folder)")
    p.add_argument("args", nargs=argparse.REMAINDER,
                   help="passed on to the benchmark (e.g. --quick); `-- --help` shows its own")


def run(args: argparse.Namespace) -> int:
    repo = args.repo.resolve()
    if not (repo / "benchmarks" / "__init__.py").exists():
        print(f"error: no benchmarks/ folder under {repo}; run from a sievedb source checkout "
              "or pass --repo", file=sys.stderr)
        return 1
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    module_name, _ = WORKLOADS[args.workload]
    try:
        module = importlib.import_module(f"benchmarks.{module_name}")
    except ImportError as exc:
        print(f"error: {exc}; install the benchmark extra: pip install -e '.[bench]'",
              file=sys.stderr)
        return 1
    forwarded = [a for a in args.args if a != "--"]
    harness = importlib.import_module("benchmarks.harness")
    harness.COMMAND_OVERRIDE = shlex.join(["sievedb", "bench", args.workload, *forwarded])
    saved = sys.argv
    sys.argv = [f"benchmarks.{module_name}", *forwarded]
    try:
        status = module.main()
    finally:
        sys.argv = saved
    return int(status or 0)
