"""What an online snapshot costs: its duration, archive size, restore time, and how much
the writes and searches running at the same time slow down.

    python -m benchmarks.bench_snapshot           # the committed run: 200k x 128
    python -m benchmarks.bench_snapshot --quick   # smoke test: 5k x 32

A `sievedb serve` subprocess holds a collection of n seeded normal vectors (cosine, HNSW
m=16 ef_construction=200, one indexed keyword attribute), bulk-loaded and fully indexed. From
this process one thread upserts batches of 64 points (half overwrites, half new ids) and one
thread searches (k=10, no filter), back to back, for `--baseline` seconds; then
`create_snapshot` runs while they go on, and they continue `--after` seconds more. Operations
are split into those that ended before the snapshot started and those that overlapped it.
Then the archive is downloaded and uploaded into a second `sievedb serve` (new data dir) with
`restore_snapshot`, and the restored collection's counts and watermarks are checked.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sievedb import Client

from benchmarks.harness import (
    Timer,
    command_line,
    environment,
    latency_summary,
    markdown_table,
    write_results,
)

__all__ = ["main", "run"]

FULL = {"n": 200_000, "dim": 128, "baseline": 10.0, "after": 5.0}
QUICK = {"n": 5_000, "dim": 32, "baseline": 2.0, "after": 1.0}
SEED, BATCH = 0, 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(data_dir: Path) -> Iterator[str]:
    """`sievedb serve` in a subprocess; yields its target once it answers."""
    port = _free_port()
    log = open(data_dir.parent / f"{data_dir.name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sievedb.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    target = f"127.0.0.1:{port}"
    try:
        with Client(target, timeout=2) as probe:
            for _ in range(300):
                try:
                    probe.list_collections()
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    time.sleep(0.1)
        yield target
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        log.close()


class Loop(threading.Thread):
    """Call `op(i)` back to back until stopped; record (start_ns, end_ns) of each call."""

    def __init__(self, op: Callable[[int], Any]) -> None:
        super().__init__(daemon=True)
        self.op, self.spans = op, []
        self.stop = threading.Event()
        self.errors = 0

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            t0 = time.perf_counter_ns()
            try:
                self.op(i)
            except Exception:  # noqa: BLE001 - counted and reported
                self.errors += 1
            self.spans.append((t0, time.perf_counter_ns()))
            i += 1

    def split(self, start: int, end: int) -> tuple[dict[str, float], dict[str, float]]:
        spans = np.asarray(self.spans, dtype=np.int64)
        before = spans[spans[:, 1] < start]
        during = spans[(spans[:, 1] >= start) & (spans[:, 0] <= end)]
        summary = []
        for part in (before, during):
            lat = part[:, 1] - part[:, 0]
            s = latency_summary(lat) if lat.size else {"queries": 0}
            s["max_ms"] = float(lat.max() / 1e6) if lat.size else 0.0
            summary.append(s)
        return summary[0], summary[1]


def run(n: int, dim: int, baseline: float, after: float, work: Path) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    attrs = [{"cat": f"c{i % 10}"} for i in range(n)]
    out: dict[str, Any] = {}
    with _server(work / "source") as source, Client(source, timeout=600) as db:
        db.create_collection("bench", dim, "cosine", schema={"cat": "keyword"})
        with Timer() as load:
            db.bulk_load("bench", vectors, attributes=attrs)
            db.wait_indexed("bench", poll=0.2)
        out["load_s"] = load.seconds
        wrng = np.random.default_rng(SEED + 1)
        next_id = [n]

        def write(i: int) -> None:
            fresh = list(range(next_id[0], next_id[0] + BATCH // 2))
            next_id[0] += BATCH // 2
            ids = fresh + [int(x) for x in wrng.integers(n, size=BATCH // 2)]
            db.upsert(
                "bench",
                ids,
                wrng.normal(size=(len(ids), dim)).astype(np.float32),
                [{"cat": "w"}] * len(ids),
            )

        queries = np.random.default_rng(SEED + 2).normal(size=(1000, dim)).astype(np.float32)

        def search(i: int) -> None:
            db.search("bench", queries[i % len(queries)], 10, with_attributes=False)

        loops = {"upsert": Loop(write), "search": Loop(search)}
        for loop in loops.values():
            loop.start()
        time.sleep(baseline)
        start = time.perf_counter_ns()
        snap = db.create_snapshot("bench", timeout=None)
        end = time.perf_counter_ns()
        time.sleep(after)
        for loop in loops.values():
            loop.stop.set()
            loop.join()
        info = db.describe_collection("bench")
        out["snapshot"] = {
            "seconds": (end - start) / 1e9,
            "archive_bytes": snap.size_bytes,
            "watermark": snap.watermark,
            "points": snap.point_count,
            "source_disk_bytes_after": info.disk_bytes,
        }
        out["latency"] = {}
        for name, loop in loops.items():
            before, during = loop.split(start, end)
            out["latency"][name] = {"before": before, "during": during, "errors": loop.errors}
        with Timer() as dl:
            archive = db.download_snapshot(snap.name, work)
        out["download_s"] = dl.seconds
    with _server(work / "target") as target, Client(target, timeout=600) as db2:
        with Timer() as rs:
            restored = db2.restore_snapshot(archive, "restored")
        out["restore_s"] = rs.seconds
        out["restored"] = {
            "points": restored.point_count,
            "indexed": restored.indexed_count,
            "watermark": restored.watermark,
            "index_watermark": restored.index_watermark,
            "disk_bytes": restored.disk_bytes,
        }
    assert restored.point_count == snap.point_count, "restored point count differs"
    assert restored.index_watermark == restored.watermark == snap.watermark, "graph not loaded"
    return out


def _markdown(params: dict[str, Any], r: dict[str, Any]) -> str:
    snap = r["snapshot"]
    mb = 1024 * 1024
    lines = [
        (
            f"Collection: {params['n']:,} x {params['dim']} float32, cosine, HNSW m=16 "
            f"ef_construction=200, one keyword attribute; bulk load + index build "
            f"{r['load_s']:.1f} s."
        ),
        "",
        (
            f"Snapshot (taken while one client thread upserted batches of {BATCH} and another "
            f"searched): {snap['seconds']:.2f} s, archive {snap['archive_bytes'] / mb:.1f} MiB "
            f"({snap['points']:,} points at watermark {snap['watermark']}); download "
            f"{r['download_s']:.2f} s; upload + restore into a new server "
            f"{r['restore_s']:.2f} s, restored {r['restored']['points']:,} points, graph "
            f"loaded at watermark {r['restored']['index_watermark']} (no rebuild), "
            f"{r['restored']['indexed']:,} indexed."
        ),
        "",
    ]
    rows = []
    for op, lat in r["latency"].items():
        for phase in ("before", "during"):
            s = lat[phase]
            rows.append(
                {
                    "operation": op,
                    "phase": phase,
                    "calls": s.get("queries", 0),
                    "p50 ms": s.get("p50_ms", 0.0),
                    "p99 ms": s.get("p99_ms", 0.0),
                    "max ms": s.get("max_ms", 0.0),
                    "errors": lat["errors"],
                }
            )
    lines.append(
        markdown_table(
            rows, ["operation", "phase", "calls", "p50 ms", "p99 ms", "max ms", "errors"]
        )
    )
    lines.append("")
    lines.append(
        "`before`: calls that ended before `create_snapshot` was called; `during`: calls that "
        "overlapped it. Client and servers on one 2-core VM shared with other jobs."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-test run")
    parser.add_argument("--n", type=int)
    parser.add_argument("--dim", type=int)
    parser.add_argument("--name", default="", help="results file name (default snapshot[_quick])")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    params = dict(QUICK if args.quick else FULL)
    if args.n:
        params["n"] = args.n
    if args.dim:
        params["dim"] = args.dim
    with tempfile.TemporaryDirectory(prefix="sievedb-bench-snapshot-") as tmp:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        result = run(**params, work=Path(tmp))  # type: ignore[arg-type]
    doc = {
        "command": command_line(),
        "params": params,
        "environment": environment(),
        "results": result,
    }
    name = args.name or ("snapshot_quick" if args.quick else "snapshot")
    json_path, md_path = write_results(name, doc, _markdown(params, result), args.out)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
