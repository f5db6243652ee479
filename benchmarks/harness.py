"""Shared benchmark plumbing: timing, summaries, recall, environment capture, result files.

Every benchmark in this folder times with `time.perf_counter_ns` (never `time.time`), seeds
every random number, and writes one JSON document (full parameters + environment + numbers)
and one Markdown table per run under `benchmarks/results/`. Results are keyed by the exact
command line that produced them so a figure can always be traced back to a command.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Self

import numpy as np

__all__ = [
    "BENCH_DIR",
    "CACHE_DIR",
    "RESULTS_DIR",
    "Timer",
    "cache_key",
    "command_line",
    "environment",
    "latency_summary",
    "markdown_table",
    "quiet_server_logs",
    "recall_at_k",
    "time_each",
    "wait_serving",
    "write_results",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
CACHE_DIR = BENCH_DIR / "cache"  # gitignored: ground truth, built indexes, loaded collections


COMMAND_OVERRIDE: str | None = None
"""Set by launchers (`sievedb bench`) that run a benchmark's `main()` in their own process."""


def command_line() -> str:
    """The command that started this process, as it could be pasted into a shell."""
    if COMMAND_OVERRIDE:
        return COMMAND_OVERRIDE
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        head = ["python", "-m", spec.name.removesuffix(".__main__")]
    else:
        head = ["python", sys.argv[0]] if sys.argv and sys.argv[0] else ["python"]
    return " ".join(shlex.quote(a) for a in [*head, *sys.argv[1:]])


def quiet_server_logs() -> None:
    """Keep the server's per-request access log out of timed loops (it is INFO level)."""
    import logging

    for name in ("sievedb", "sievedb_server"):
        logging.getLogger(name).setLevel(logging.WARNING)


def cache_key(*parts: object) -> str:
    """A short stable hash of the parameters that determine a cached artefact."""
    blob = json.dumps([str(p) for p in parts], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class Timer:
    """Wall-clock seconds of a block, with perf_counter_ns."""

    seconds: float = 0.0
    _t0: int = field(default=0, repr=False)

    def __enter__(self) -> Self:
        self._t0 = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = (time.perf_counter_ns() - self._t0) / 1e9


def time_each(fn: Callable[[int], Any], n: int) -> tuple[np.ndarray, list[Any]]:
    """Call fn(i) for i in range(n) sequentially; per-call nanoseconds and the outputs."""
    nanos = np.empty(n, dtype=np.int64)
    outs: list[Any] = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        out = fn(i)
        nanos[i] = clock() - t0
        outs.append(out)
    return nanos, outs


def latency_summary(nanos: np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean latency in ms and sequential QPS (queries / total time)."""
    ms = np.asarray(nanos, dtype=np.float64) / 1e6
    total_s = float(ms.sum()) / 1e3
    return {
        "queries": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "qps": float(ms.size / total_s) if total_s > 0 else float("inf"),
    }


def recall_at_k(
    found: Sequence[Iterable[int]], truth: Sequence[Any] | np.ndarray, k: int
) -> float:
    """Mean over queries of |found ∩ truth[:k]| / min(k, |truth|) (queries with no truth skip).

    The denominator is min(k, |truth|) so a filter allowing only 3 points can still score 1.0.
    Entries < 0 in `truth` (padding) are ignored.
    """
    scores = []
    for f, t in zip(found, truth):
        tset = {int(x) for x in list(t)[:k] if int(x) >= 0}
        if not tset:
            continue
        fset = {int(x) for x in list(f)[:k]}
        scores.append(len(fset & tset) / len(tset))
    return float(np.mean(scores)) if scores else 1.0


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """What a reader needs to judge the numbers: code version, libraries, hardware."""
    sched = getattr(os, "sched_getaffinity", None)
    return {
        "git_sha": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "server", "client", "proto")),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(sched(0)) if sched else None,
        "numpy": np.__version__,
        "hnswlib": _version("hnswlib"),
        "faiss": _version("faiss-cpu"),
        "grpcio": _version("grpcio"),
        "pyroaring": _version("pyroaring"),
        "lmdb": _version("lmdb"),
        "sievedb": _version("sievedb"),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def write_results(
    name: str, doc: dict[str, Any], markdown: str, out_dir: Path | None = None
) -> tuple[Path, Path]:
    """Write `<name>.json` and `<name>.md` (the Markdown starts with the command and env)."""
    out = out_dir or RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    env = doc.get("environment", {})
    header = [
        f"# {name}",
        "",
        f"Command: `{doc.get('command', '')}`",
        "",
        (
            f"Environment: sievedb @ `{(env.get('git_sha') or '?')[:10]}`"
            f"{' (dirty)' if env.get('git_dirty') else ''}, Python {env.get('python')}, "
            f"numpy {env.get('numpy')}, hnswlib {env.get('hnswlib')}, faiss {env.get('faiss')}, "
            f"{env.get('cpu_model')} ({env.get('cpu_affinity')} usable cores), "
            f"{env.get('timestamp_utc')}."
        ),
        "",
    ]
    md_path.write_text("\n".join(header) + markdown.rstrip() + "\n")
    return json_path, md_path


def wait_serving(
    target: str, proc: Any, *, timeout: float = 120.0, log_path: Path | None = None
) -> None:
    """Block until the `sievedb serve` subprocess `proc` at `target` reports SERVING.

    Raises RuntimeError (with the tail of `log_path`, if given) when the process exits first,
    TimeoutError after `timeout` seconds.
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
            raise RuntimeError(f"sievedb serve exited with {proc.returncode}:\n{tail}")
        with grpc.insecure_channel(target) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
        time.sleep(0.1)
    raise TimeoutError(f"sievedb serve did not become SERVING within {timeout:.0f} s")
