"""Bulk load end to end: `sievedb load` of a file into a durable, fully indexed collection,
against a raw `hnswlib.Index.add_items` build of the same vectors in the same run.

    python -m benchmarks.bench_bulk_load                 # the committed run: 1M x 128, 200k x 768
    python -m benchmarks.bench_bulk_load --sizes 200000x768
    python -m benchmarks.bench_bulk_load --quick         # smoke test: 20k x 32

Data: seeded clustered float32 vectors (`sievedb.synthetic`'s model: Gaussian clusters near a
16-dimensional subspace, Zipf cluster sizes), written as a `.npy` file, L2 metric.

Per size, sequentially, on the same machine:

(a) raw: a child process `np.load`s the file and runs `hnswlib.Index(space="l2")`,
    `init_index(max_elements=n, M, ef_construction)`, `add_items(X, num_threads=cores)`;
    timed around `add_items` only (the best case for hnswlib: data already in memory);
(b) sievedb: `sievedb serve` in a child process (LMDB fsync on, as deployed), a collection
    with the same M / ef_construction, and `sievedb load COLLECTION FILE` in another child:
    it streams chunks from the file (each one durable LMDB transaction), the server indexes in
    the background with `add_items(num_threads=cores)`, and the command returns once
    `indexed_count == point_count`. Timed from the command's start to its exit, so it includes
    process start, file reading, gRPC, LMDB and graph build.

Reported: vectors/s of both and their ratio (goal ≥ 0.8), the time until every chunk was
durable, peak RSS (VmHWM) of the server and of the client against the raw size of the vectors
plus the HNSW links (goal server ≤ 2.5×), the raw child's own peak, and recall@10 of 200
held-out queries against the exact answer for both indexes (same construction parameters, so
these should agree). Results: `benchmarks/results/bulk_load.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import (
    CACHE_DIR,
    RESULTS_DIR,
    command_line,
    environment,
    markdown_table,
    wait_serving,
    write_results,
)

__all__ = ["main"]

M, EF_CONSTRUCTION, K, SEED, QUERIES = 16, 200, 10, 0, 200
FULL_SIZES = "1000000x128,200000x768"
QUICK_SIZES = "20000x32"
_HWM = re.compile(r"VmHWM:\s+(\d+)\s+kB")


def _vm_hwm_mb(pid: int | str = "self") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = _HWM.search(text)
    return int(match.group(1)) / 1024 if match else float("nan")


# --- data -------------------------------------------------------------------------------------


def write_dataset(path: Path, n: int, dim: int, seed: int = SEED) -> np.ndarray:
    """Clustered vectors into `path` (.npy) block by block; returns held-out queries."""
    model = np.random.default_rng(seed)
    k = min(16, dim)
    basis = np.linalg.qr(model.standard_normal((dim, k)))[0].T
    centres = model.standard_normal((256, k)) * 2.0
    weights = 1.0 / np.arange(1, 257) ** 0.8
    weights /= weights.sum()

    def block(m: int, rng: np.random.Generator) -> np.ndarray:
        assign = rng.choice(256, size=m, p=weights)
        latent = centres[assign] + rng.standard_normal((m, k)) * 0.7
        return (latent @ basis + rng.standard_normal((m, dim)) * 0.035).astype(np.float32)

    if not path.exists():  # cached: the same seed always writes the same file
        rng = np.random.default_rng(seed + 1)
        tmp = path.with_suffix(".tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype="<f4", shape=(n, dim))
        for start in range(0, n, 100_000):
            stop = min(start + 100_000, n)
            out[start:stop] = block(stop - start, rng)
        out.flush()
        del out
        tmp.rename(path)
    return block(QUERIES, np.random.default_rng(seed + 2))


def exact_truth(path: Path, queries: np.ndarray, k: int = K) -> np.ndarray:
    data = np.load(path, mmap_mode="r")
    qn = (queries**2).sum(1)
    best_d = np.full((len(queries), k), np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, data.shape[0], 100_000):
        block = np.asarray(data[start : start + 100_000])
        d = qn[:, None] - 2 * queries @ block.T + (block**2).sum(1)[None, :]
        d_all = np.concatenate([best_d, d], axis=1)
        i_all = np.concatenate(
            [best_i, np.broadcast_to(np.arange(start, start + block.shape[0]), d.shape)], axis=1
        )
        part = np.argsort(d_all, axis=1)[:, :k]
        best_d = np.take_along_axis(d_all, part, 1)
        best_i = np.take_along_axis(i_all, part, 1)
    return best_i


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def raw_bytes(n: int, dim: int, m: int = M) -> dict[str, int]:
    """Vectors plus hnswlib links: level 0 has 2M links + a count per point; a point reaches
    level ≥ 1 with probability 1/M, each upper level holding M links + a count."""
    vectors = n * dim * 4
    links = n * (2 * m * 4 + 4) + int(n / (m - 1)) * (m * 4 + 4)
    return {"vectors": vectors, "links": links, "total": vectors + links}


# --- raw hnswlib (child process) ---------------------------------------------------------------


def raw_child(path: str, m: int, efc: int, threads: int, queries_path: str) -> None:
    import hnswlib

    data = np.load(path)
    index = hnswlib.Index(space="l2", dim=data.shape[1])
    index.init_index(max_elements=data.shape[0], M=m, ef_construction=efc, random_seed=100)
    t0 = time.perf_counter_ns()
    index.add_items(data, np.arange(data.shape[0]), num_threads=threads)
    seconds = (time.perf_counter_ns() - t0) / 1e9
    index.set_ef(128)
    labels, _ = index.knn_query(np.load(queries_path), k=K, num_threads=threads)
    np.save(queries_path + ".raw.npy", labels)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _vm_hwm_mb()}))


def run_raw(path: Path, queries_path: Path, threads: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_bulk_load", "--raw-child", str(path),
         str(M), str(EF_CONSTRUCTION), str(threads), str(queries_path)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
    )
    doc: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    doc["labels"] = np.load(str(queries_path) + ".raw.npy")
    return doc


# --- sievedb (server and client child processes) ------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_CLIENT_CODE = (
    "import re, sys; from sievedb.cli import main; rc = main(sys.argv[1:]); "
    "s = open('/proc/self/status').read(); "
    "print('PEAK_RSS_KB', re.search(r'VmHWM:\\s+(\\d+)', s).group(1), file=sys.stderr); "
    "sys.exit(rc)"
)


def run_sievedb(path: Path, queries: np.ndarray, work: Path, dim: int) -> dict[str, Any]:
    from sievedb import Client

    data_dir = work / "sievedb-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    port = _free_port()
    log_path = work / "server.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "sievedb.cli", "serve", "--data-dir", str(data_dir),
             "--port", str(port), "--log-level", "warning"],
            stdout=log_file, stderr=subprocess.STDOUT,
        )
        try:
            wait_serving(f"127.0.0.1:{port}", server)
            target = f"127.0.0.1:{port}"
            with Client(target) as client:
                client.create_collection("bench", dim, "l2", m=M, ef_construction=EF_CONSTRUCTION,
                                         full_scan_threshold=0)
            t0 = time.perf_counter_ns()
            proc = subprocess.Popen(
                [sys.executable, "-c", _CLIENT_CODE, "load", "bench", str(path),
                 "--target", target, "--no-progress"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            probes = _probe_while_loading(target, queries, proc)
            stdout, stderr = proc.communicate()
            seconds = (time.perf_counter_ns() - t0) / 1e9
            load = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
            if load.returncode != 0:
                raise RuntimeError(f"sievedb load failed:\n{load.stderr[-3000:]}")
            ingest = re.search(r"in ([0-9.]+)s", load.stdout)
            client_peak = int(load.stderr.split("PEAK_RSS_KB")[-1].split()[0]) / 1024
            server_peak = _vm_hwm_mb(server.pid)
            with Client(target) as client:
                info = client.describe_collection("bench")
                found = np.array([
                    list(r.ids) for r in client.search_batch("bench", queries, k=K, ef=128,
                                                             with_attributes=False)
                ])
            return {
                "seconds": seconds,
                "ingest_seconds": float(ingest.group(1)) if ingest else float("nan"),
                "server_peak_rss_mb": server_peak,
                "client_peak_rss_mb": client_peak,
                "point_count": info.point_count,
                "indexed_count": info.indexed_count,
                "labels": found,
                "probes": probes,
                "stdout": load.stdout.strip(),
            }
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=600)


def _probe_while_loading(
    target: str, queries: np.ndarray, proc: subprocess.Popen[str], every_s: float = 2.0
) -> dict[str, Any]:
    """While the load runs, one k=10 search every `every_s` (light: it must not perturb the
    throughput figure): latency, and how far the graph lagged (stored - indexed)."""
    from sievedb import Client

    lat_ms: list[float] = []
    lag: list[int] = []
    empty = 0
    with Client(target, timeout=120) as client:
        i = 0
        while proc.poll() is None:
            time.sleep(every_s)
            if proc.poll() is not None:
                break
            try:
                info = client.describe_collection("bench")
                t0 = time.perf_counter_ns()
                hits = client.search("bench", queries[i % len(queries)], k=K,
                                     with_attributes=False)
                lat_ms.append((time.perf_counter_ns() - t0) / 1e6)
            except Exception as exc:  # noqa: BLE001 - a probe must never break the measured load
                print(f"probe failed: {exc}", file=sys.stderr)
                continue
            lag.append(info.point_count - info.indexed_count)
            empty += len(hits.hits) == 0 and info.point_count > 0
            i += 1
    arr = np.asarray(lat_ms) if lat_ms else np.asarray([np.nan])
    return {
        "probes": len(lat_ms),
        "p50_ms": float(np.percentile(arr, 50)),
        "max_ms": float(arr.max()),
        "max_lag": max(lag) if lag else 0,
        "empty_results": int(empty),
    }


# --- driver ------------------------------------------------------------------------------------


def run_size(n: int, dim: int, threads: int, work_root: Path) -> dict[str, Any]:
    work = work_root / f"{n}x{dim}"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"base-{n}x{dim}-seed{SEED}.npy"
    queries = write_dataset(path, n, dim)
    queries_path = work / "queries.npy"
    np.save(queries_path, queries)
    truth = exact_truth(path, queries)
    raw = run_raw(path, queries_path, threads)
    sdb = run_sievedb(path, queries, work, dim)
    size = raw_bytes(n, dim)
    raw_mb = size["total"] / 2**20
    row = {
        "size": f"{n:,} x {dim}",
        "n": n,
        "dim": dim,
        "threads": threads,
        "raw_seconds": raw["seconds"],
        "raw_vps": n / raw["seconds"],
        "sievedb_seconds": sdb["seconds"],
        "sievedb_vps": n / sdb["seconds"],
        "throughput_ratio": raw["seconds"] / sdb["seconds"],
        "durable_seconds": sdb["ingest_seconds"],
        "vectors_plus_links_mb": raw_mb,
        "server_peak_rss_mb": sdb["server_peak_rss_mb"],
        "server_rss_ratio": sdb["server_peak_rss_mb"] / raw_mb,
        "client_peak_rss_mb": sdb["client_peak_rss_mb"],
        "raw_child_peak_rss_mb": raw["peak_rss_mb"],
        "raw_recall": recall(raw["labels"], truth),
        "sievedb_recall": recall(sdb["labels"], truth),
        "indexed": f"{sdb['indexed_count']}/{sdb['point_count']}",
        "probe_p50_ms": sdb["probes"]["p50_ms"],
        "probe_max_ms": sdb["probes"]["max_ms"],
        "probe_max_lag": sdb["probes"]["max_lag"],
        "probes": sdb["probes"]["probes"],
        "load_output": sdb["stdout"],
    }
    print(json.dumps({k: v for k, v in row.items() if k != "load_output"}), file=sys.stderr)
    return row


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--raw-child":
        raw_child(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=FULL_SIZES, help="comma-separated NxDIM")
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="hnswlib threads for the raw build (the server uses every core)")
    parser.add_argument("--work-dir", type=Path, default=CACHE_DIR / "bulk_load")
    parser.add_argument("--name", default=None, help="results file name (default bulk_load)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else args.sizes
    rows: list[dict[str, Any]] = []
    for spec in sizes.split(","):
        n, dim = (int(x) for x in spec.lower().split("x"))
        rows.append(run_size(n, dim, args.threads, args.work_dir))
        _write(args, sizes, rows)  # after every size, so a cut-short run keeps what it measured
    return 0


def _write(args: argparse.Namespace, sizes: str, rows: list[dict[str, Any]]) -> None:
    doc = {
        "benchmark": "bulk_load",
        "command": command_line(),
        "params": {"m": M, "ef_construction": EF_CONSTRUCTION, "k": K, "queries": QUERIES,
                   "search_ef": 128, "seed": SEED, "threads": args.threads, "metric": "l2",
                   "format": "npy", "sizes": sizes},
        "environment": environment(),
        "results": rows,
    }
    cols = ["size", "raw_seconds", "sievedb_seconds", "raw_vps", "sievedb_vps",
            "throughput_ratio", "durable_seconds", "vectors_plus_links_mb",
            "server_peak_rss_mb", "server_rss_ratio", "client_peak_rss_mb",
            "raw_child_peak_rss_mb", "raw_recall", "sievedb_recall", "indexed",
            "probes", "probe_p50_ms", "probe_max_ms", "probe_max_lag"]
    md = [
        (
            "Goal (issue): throughput_ratio = raw build time / sievedb end-to-end time ≥ 0.8, "
            "and server_rss_ratio = server peak RSS / (vectors + HNSW links) ≤ 2.5."
        ),
        "",
        markdown_table(rows, cols),
        "",
        (
            "raw = `hnswlib.Index.add_items(X, num_threads)` on data already in memory (timed "
            "around add_items only); sievedb = `sievedb load` from the .npy file to a durable, "
            "fully indexed collection (process start, reading, gRPC, LMDB with fsync per chunk, "
            "background graph build). durable_seconds = until every chunk was committed. "
            f"RSS = VmHWM. M={M}, ef_construction={EF_CONSTRUCTION}, recall@{K} at ef=128 over "
            f"{QUERIES} held-out queries. probe_* = one k=10 search every 2 s while the load "
            "ran (gRPC round trip; the graph lagging by up to probe_max_lag points, merged "
            "exactly): the collection stays searchable throughout."
        ),
    ]
    name = args.name or ("bulk_load_quick" if args.quick else "bulk_load")
    write_results(name, doc, "\n".join(md) + "\n", args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
