"""Load test: many concurrent clients doing filtered searches and upserts against one server.

    python -m benchmarks.load_test --clients 32 --duration 180       # the committed run
    python -m benchmarks.load_test --quick                           # 4 clients, ~3 s (CI)

What it does, in order:

1. starts `sievedb serve` as a subprocess on 127.0.0.1 (a non-loopback `--host` is refused:
   this script must never hammer a machine someone else uses), with `--metrics-port` and
   JSON access logs to a file;
2. bulk-loads a seeded synthetic-arXiv collection (`n` x `dim`, six attributes, cosine) and
   waits until it is fully indexed;
3. runs `--clients` concurrent clients for `--duration` seconds: `--processes` worker
   processes, each with clients/processes threads sharing one channel, so the client side is
   not serialised by one GIL. Each client loops: with probability `--upsert-ratio` an upsert
   of `--upsert-batch` points (half new ids, half overwrites, by default), otherwise a k=10
   search, unfiltered or with a filter drawn from one selectivity bucket (50 %, 10 %, 1 %,
   0.1 %; filters built and measured by `filtered_queries.build_queries`);
4. samples the server's RSS (`VmRSS` from /proc/<pid>/status) every second throughout;
5. scrapes the server's Prometheus endpoint at the end and checks that the server counted
   exactly the calls the clients made, and that the access log has one line per call;
6. writes `results/<name>.{json,md}` (command, parameters, environment) and
   `results/<name>_rss.png` (RSS and throughput over time).

Latency is client-side, per call (`perf_counter_ns` around the gRPC call), so it includes
queueing in the server's thread pool. The process exits 1 if any call failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import multiprocessing as mp
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datasets.synthetic_arxiv import make_dataset
from benchmarks.filtered_queries import Bucket, build_queries
from benchmarks.harness import (
    RESULTS_DIR,
    command_line,
    environment,
    markdown_table,
    wait_serving,
    write_results,
)

__all__ = ["LoadParams", "main", "run"]

log = logging.getLogger("load_test")

SCHEMA = {
    "main_category": "keyword",
    "sub_categories": "keyword_list",
    "number_of_authors": "integer",
    "update_date": "datetime",
    "license": "keyword",
    "has_comment": "boolean",
}
BUCKETS = [
    Bucket("50%", min_sel=0.25, max_sel=0.75),
    Bucket("10%", min_sel=0.05, max_sel=0.2),
    Bucket("1%", min_sel=0.005, max_sel=0.02),
    Bucket("0.1%", min_sel=0.0005, max_sel=0.002),
]
UNFILTERED = "unfiltered"
FILTERS_PER_BUCKET = 20
ATTRIBUTE_SAMPLES = 1000  # attribute maps the upserts draw from
COLLECTION = "load"
LATENCY_METRIC = "`sievedb_grpc_request_duration_seconds`"
GLOBAL_GAUGES = ("sievedb_bulk_load_rows_total", "sievedb_collections")
CALL_TIMEOUT_S = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class LoadParams:
    clients: int = 32
    processes: int = 4
    duration_s: float = 180.0
    n: int = 50_000
    dim: int = 128
    upsert_ratio: float = 0.1
    upsert_batch: int = 10
    new_point_fraction: float = 0.5
    k: int = 10
    server_workers: int = 16
    seed: int = 0
    host: str = "127.0.0.1"
    server_log_level: str = "info"


QUICK = {"clients": 4, "processes": 2, "duration_s": 3.0, "n": 2_000, "dim": 32}


# --- the server ------------------------------------------------------------------------------


def _require_loopback(host: str) -> None:
    from sievedb_server.transport.security import is_loopback

    if not is_loopback(host):
        raise SystemExit(
            f"error: refusing to load-test {host}: the load test only runs against a server it "
            "starts itself on a loopback address (e.g. 127.0.0.1)"
        )


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


MEMORY_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def _memory_kb(pid: int) -> dict[str, int]:
    """`MEMORY_FIELDS` of `pid` in KiB (zeros once it has gone).

    RssAnon is the process's own heap; RssFile counts the pages of memory-mapped files it has
    touched (LMDB and the vector file), which grow with the data, not with a leak.
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return dict.fromkeys(MEMORY_FIELDS, 0)
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name: int(fields.get(name, "0 kB").split()[0]) for name in MEMORY_FIELDS}


class RssSampler(threading.Thread):
    """Samples the server's RSS and CPU time every `interval` s, tagged with the phase."""

    def __init__(self, pid: int, t0_ns: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.t0_ns, self.interval = pid, t0_ns, interval
        self.phase = "start"
        self.samples: list[dict[str, Any]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            mem = _memory_kb(self.pid)
            cpu = _cpu_seconds(self.pid)
            t = (time.perf_counter_ns() - self.t0_ns) / 1e9
            self.samples.append({
                "t_s": round(t, 2), "rss_mb": mem["VmRSS"] / 1024, "hwm_mb": mem["VmHWM"] / 1024,
                "anon_mb": mem["RssAnon"] / 1024, "file_mb": mem["RssFile"] / 1024,
                "cpu_s": round(cpu, 2), "phase": self.phase,
            })
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# --- the clients -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Work:
    """What every worker process needs; written once as JSON + .npy, read by each worker."""

    target: str
    params: LoadParams
    ops: list[str]  # op names; index = op code in the result arrays
    filters: dict[str, list[str]]  # bucket → filter expressions
    attributes: list[dict[str, Any]]  # datetime fields as ISO strings
    vectors_path: str  # held-out query vectors (.npy), also the source of upserted vectors


def _op_names(filters: dict[str, list[str]]) -> list[str]:
    return ["upsert", f"search:{UNFILTERED}", *(f"search:{b}" for b in filters)]


def _worker_thread(
    client: Any, work: _Work, vectors: np.ndarray, attrs: list[dict[str, Any]],
    proc: int, thread: int, start_at: float, stop_at: float, out: dict[str, Any],
) -> None:
    """One client: calls until `stop_at`; per call its start, duration, op and status."""
    from sievedb.errors import SieveDBError

    p = work.params
    rng = np.random.default_rng([p.seed, 1000 + proc, thread])
    buckets = [UNFILTERED, *work.filters]
    op_index = {name: i for i, name in enumerate(work.ops)}
    starts, durations, ops, codes = [], [], [], []
    next_new = p.n + (proc * 1000 + thread) * 10_000_000  # disjoint new ids per thread
    clock = time.perf_counter_ns
    while time.monotonic() < start_at:
        time.sleep(0.001)
    base_ns = clock() - int((time.monotonic() - start_at) * 1e9)
    while time.monotonic() < stop_at:
        if rng.random() < p.upsert_ratio:
            op = "upsert"
            rows = rng.integers(len(vectors), size=p.upsert_batch)
            vecs = vectors[rows] + rng.normal(0, 0.05, size=(p.upsert_batch, p.dim))
            vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
            new = rng.random(p.upsert_batch) < p.new_point_fraction
            ids = []
            for is_new in new:
                if is_new:
                    ids.append(next_new)
                    next_new += 1
                else:
                    ids.append(int(rng.integers(p.n)))
            batch_attrs = [attrs[int(i)] for i in rng.integers(len(attrs), size=p.upsert_batch)]
            call = functools.partial(
                client.upsert, COLLECTION, ids, vecs, batch_attrs, timeout=CALL_TIMEOUT_S
            )
        else:
            bucket = buckets[int(rng.integers(len(buckets)))]
            op = f"search:{bucket}"
            query = vectors[int(rng.integers(len(vectors)))]
            flt = None
            if bucket != UNFILTERED:
                exprs = work.filters[bucket]
                flt = exprs[int(rng.integers(len(exprs)))]
            call = functools.partial(
                client.search, COLLECTION, query, p.k, filter=flt, with_attributes=False,
                timeout=CALL_TIMEOUT_S,
            )
        t0 = clock()
        try:
            call()
            code = "OK"
        except SieveDBError as exc:
            code = exc.code.name
        except Exception as exc:  # noqa: BLE001 - a client-side failure is an error too
            code = f"client:{type(exc).__name__}"
        t1 = clock()
        starts.append(t0 - base_ns)
        durations.append(t1 - t0)
        ops.append(op_index[op])
        codes.append(code)
    out.update(start=np.asarray(starts, dtype=np.int64), dur=np.asarray(durations, dtype=np.int64),
               op=np.asarray(ops, dtype=np.int16), code=np.asarray(codes, dtype=str))


def worker_main(
    work_path: str, proc: int, threads: int, ready: Any, go: Any, start_at: Any, out_path: str,
) -> None:
    """One worker process: `threads` clients on one channel; results to `out_path` (.npz)."""
    from sievedb import Client

    doc = json.loads(Path(work_path).read_text())
    work = _Work(**{**doc, "params": LoadParams(**doc["params"])})
    vectors = np.load(work.vectors_path)
    attrs = [
        {k: datetime.fromisoformat(v) if k == "update_date" else v for k, v in a.items()}
        for a in work.attributes
    ]
    with Client(work.target, timeout=CALL_TIMEOUT_S) as client:
        client.count(COLLECTION)  # connect before the clock starts
        ready.put(proc)
        go.wait()
        begin = start_at.value
        stop = begin + work.params.duration_s
        outs: list[dict[str, Any]] = [{} for _ in range(threads)]
        pool = [
            threading.Thread(
                target=_worker_thread,
                args=(client, work, vectors, attrs, proc, t, begin, stop, outs[t]),
                name=f"client-{proc}-{t}",
            )
            for t in range(threads)
        ]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
    arrays = {key: np.concatenate([o[key] for o in outs]) for key in outs[0]}
    np.savez(out_path, **arrays)  # type: ignore[arg-type]


# --- the run ---------------------------------------------------------------------------------


def _preload(target: str, p: LoadParams, work_dir: Path) -> tuple[_Work, dict[str, Any]]:
    """Create and bulk-load the collection; build the filters and the workers' inputs."""
    from sievedb import Client

    data = make_dataset(p.n, p.dim, max(200, p.n // 100), seed=p.seed)
    queries = build_queries(
        data.attributes, len(data.queries), BUCKETS, FILTERS_PER_BUCKET, seed=p.seed
    )
    filters: dict[str, list[str]] = {}
    selectivity: dict[str, list[float]] = {}
    for q in queries:
        filters.setdefault(q.bucket, []).append(q.expr)
        selectivity.setdefault(q.bucket, []).append(q.count / p.n)
    records = data.attributes.to_records()
    t0 = time.perf_counter_ns()
    with Client(target, timeout=600) as client:
        client.create_collection(COLLECTION, p.dim, "cosine", schema=SCHEMA)
        client.bulk_load(COLLECTION, data.base, ids=np.arange(p.n), attributes=records)
        loaded_s = (time.perf_counter_ns() - t0) / 1e9
        client.wait_indexed(COLLECTION, poll=0.2, deadline=1800)
        # Every filter must agree with the numpy count before anything is timed.
        for q in queries[:: max(1, len(queries) // 20)]:
            got = client.count(COLLECTION, filter=q.expr)
            if got != q.count:
                raise RuntimeError(f"count({q.expr!r}) = {got}, numpy says {q.count}")
    indexed_s = (time.perf_counter_ns() - t0) / 1e9
    vectors_path = work_dir / "queries.npy"
    np.save(vectors_path, data.queries)
    rng = np.random.default_rng([p.seed, 5])
    sample = rng.choice(p.n, size=min(ATTRIBUTE_SAMPLES, p.n), replace=False)
    attributes = [
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in records[int(i)].items()}
        for i in sample
    ]
    work = _Work(target, p, _op_names(filters), filters, attributes, str(vectors_path))
    info = {
        "bulk_load_s": round(loaded_s, 2),
        "indexed_s": round(indexed_s, 2),
        "filters": {b: len(v) for b, v in filters.items()},
        "selectivity_median": {b: float(np.median(v)) for b, v in selectivity.items()},
    }
    return work, info


def _drive(work: _Work, work_dir: Path) -> tuple[dict[str, np.ndarray], float]:
    """Run the worker processes; their merged per-call arrays and when they started calling.

    The start is a `time.monotonic()` value: CLOCK_MONOTONIC is one clock for every process.
    """
    p = work.params
    ctx = mp.get_context("spawn")
    work_path = work_dir / "work.json"
    work_path.write_text(json.dumps(asdict(work)))
    ready, go, start_at = ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    procs = max(1, min(p.processes, p.clients))
    per_proc = [p.clients // procs + (1 if i < p.clients % procs else 0) for i in range(procs)]
    outs = [work_dir / f"worker-{i}.npz" for i in range(procs)]
    children = [
        ctx.Process(
            target=worker_main,
            args=(str(work_path), i, per_proc[i], ready, go, start_at, str(outs[i])),
            name=f"load-worker-{i}",
        )
        for i in range(procs)
    ]
    for c in children:
        c.start()
    for _ in children:
        ready.get(timeout=300)
    start_at.value = began = time.monotonic() + 0.2
    go.set()
    for c in children:
        c.join(timeout=p.duration_s + 600)
        if c.exitcode != 0:
            raise RuntimeError(f"{c.name} exited with {c.exitcode}")
    parts = []
    for path in outs:
        with np.load(path) as z:
            parts.append({key: z[key] for key in z.files})
    arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return arrays, began


def _latency(ms: np.ndarray) -> dict[str, float]:
    if ms.size == 0:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"),
                "max_ms": float("nan"), "mean_ms": float("nan")}
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
    }


def summarise(arrays: dict[str, np.ndarray], ops: Sequence[str], window_s: float) -> dict[str, Any]:
    """Throughput, latency percentiles and errors, overall and per op."""
    ms = arrays["dur"] / 1e6
    errors = arrays["code"] != "OK"
    rows = []
    for i, op in enumerate(ops):
        sel = arrays["op"] == i
        rows.append({
            "op": op,
            "calls": int(sel.sum()),
            "ops_per_s": float(sel.sum() / window_s),
            **_latency(ms[sel]),
            "errors": int((sel & errors).sum()),
        })
    by_status = Counter(str(c) for c in arrays["code"][errors].tolist())
    starts_s = arrays["start"] / 1e9
    seconds = int(np.ceil(window_s))
    per_second = {
        op: np.bincount(
            np.clip(starts_s[arrays["op"] == i].astype(np.int64), 0, seconds - 1),
            minlength=seconds,
        ).tolist()
        for i, op in enumerate(ops)
    }
    return {
        "overall": {
            "calls": int(ms.size),
            "ops_per_s": float(ms.size / window_s),
            **_latency(ms),
            "errors": int(errors.sum()),
        },
        "per_op": rows,
        "errors_by_status": dict(by_status),
        "calls_per_second": per_second,
    }


def scrape_metrics(url: str) -> tuple[str, dict[str, Any]]:
    """The raw exposition text and the figures the report uses, parsed."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=30) as reply:
        text = reply.read().decode()
    requests: dict[str, dict[str, float]] = {}
    plans: dict[str, float] = {}
    latency_sum: dict[str, float] = {}
    latency_count: dict[str, float] = {}
    gauges: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "sievedb_grpc_requests_total":
                requests.setdefault(s.labels["method"], {})[s.labels["code"]] = s.value
            elif s.name == "sievedb_search_plans_total":
                key = f"{s.labels['plan']} ({'filtered' if s.labels['filtered'] == 'true' else 'unfiltered'})"
                plans[key] = s.value
            elif s.name == "sievedb_grpc_request_duration_seconds_sum":
                latency_sum[s.labels["method"]] = s.value
            elif s.name == "sievedb_grpc_request_duration_seconds_count":
                latency_count[s.labels["method"]] = s.value
            elif s.labels.get("collection") == COLLECTION or s.name in GLOBAL_GAUGES:
                gauges[s.name] = s.value
    mean_ms = {
        m: 1000 * latency_sum[m] / latency_count[m]
        for m in latency_sum if latency_count.get(m)
    }
    return text, {"requests": requests, "plans": plans, "server_mean_ms": mean_ms,
                  "gauges": gauges}


def _access_lines(log_path: Path) -> Counter[str]:
    """Access-log lines per method in the server's JSON log."""
    counts: Counter[str] = Counter()
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if '"sievedb.access"' not in line:
                continue
            try:
                counts[json.loads(line)["method"].rsplit("/", 1)[1]] += 1
            except (ValueError, KeyError):
                counts["<unparsed>"] += 1
    return counts


def run(p: LoadParams, work_dir: Path, command: str | None = None) -> dict[str, Any]:
    """The whole load test; returns the result document (no files written but work_dir's)."""
    _require_loopback(p.host)
    port, metrics_port = _free_port(p.host), _free_port(p.host)
    target = f"{p.host}:{port}"
    log_path = work_dir / "server.log"
    cmd = [
        sys.executable, "-m", "sievedb.cli", "serve", "--data-dir", str(work_dir / "data"),
        "--host", p.host, "--port", str(port), "--workers", str(p.server_workers),
        "--metrics-port", str(metrics_port), "--metrics-host", p.host,
        "--log-format", "json", "--log-level", p.server_log_level,
    ]
    env = environment()  # before the run: the code that ran, not what the tree holds after
    t0, t0_mono = time.perf_counter_ns(), time.monotonic()
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
        sampler = RssSampler(server.pid, t0)
        sampler.start()
        try:
            wait_serving(target, server, log_path=log_path)
            sampler.phase = "preload"
            work, preload = _preload(target, p, work_dir)
            sampler.phase = "workers"
            arrays, began = _drive(work, work_dir)
            sampler.phase = "after"
            metrics_text, metrics = scrape_metrics(f"http://{p.host}:{metrics_port}/metrics")
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            sampler.stop()
    window_s = p.duration_s
    load_started_s = began - t0_mono
    load_ended_s = load_started_s + window_s
    for sample in sampler.samples:
        if load_started_s <= sample["t_s"] <= load_ended_s:
            sample["phase"] = "load"
    summary = summarise(arrays, work.ops, window_s)
    access = _access_lines(log_path) if p.server_log_level in ("debug", "info") else None
    load = [s for s in sampler.samples if s["phase"] == "load"]
    load_rss = [s["rss_mb"] for s in load]
    cores = (
        (load[-1]["cpu_s"] - load[0]["cpu_s"]) / (load[-1]["t_s"] - load[0]["t_s"])
        if len(load) > 1 else None
    )
    doc: dict[str, Any] = {
        "benchmark": "load_test",
        "command": command or command_line(),
        "params": asdict(p),
        "server_command": " ".join(cmd[1:]).replace(str(work_dir), "<work>"),
        "environment": env,
        "preload": preload,
        **summary,
        "server": {
            "exit_code": server.returncode,
            "rss_samples": sampler.samples,
            "load_started_s": round(load_started_s, 2),
            "load_ended_s": round(load_ended_s, 2),
            "rss_mb_load_start": load_rss[0] if load_rss else None,
            "rss_mb_load_end": load_rss[-1] if load_rss else None,
            "rss_mb_load_max": max(load_rss) if load_rss else None,
            "peak_rss_mb": max((s["hwm_mb"] for s in sampler.samples), default=None),
            "cpu_cores_during_load": cores,
            "anon_mb_load": [load[0]["anon_mb"], load[-1]["anon_mb"]] if load else None,
            "file_mb_load": [load[0]["file_mb"], load[-1]["file_mb"]] if load else None,
            "cpu_count": os.cpu_count(),
        },
        "metrics": metrics,
        "consistency": _consistency(summary, work.ops, metrics, access),
    }
    doc["metrics_text"] = metrics_text
    return doc


def _consistency(
    summary: dict[str, Any], ops: Sequence[str], metrics: dict[str, Any],
    access: Counter[str] | None,
) -> dict[str, Any]:
    """Does the server's own accounting match what the clients did?"""
    client_search = sum(r["calls"] for r in summary["per_op"] if r["op"].startswith("search"))
    client_upsert = sum(r["calls"] for r in summary["per_op"] if r["op"] == "upsert")
    served = metrics["requests"]
    out = {
        "client_searches": client_search,
        "server_searches": sum(served.get("Search", {}).values()),
        "client_upserts": client_upsert,
        "server_upserts": sum(served.get("Upsert", {}).values()),
    }
    if access is not None:
        out["access_log_lines"] = sum(access.values())
        out["server_requests_total"] = sum(sum(codes.values()) for codes in served.values())
        out["access_log_by_method"] = dict(access)
    return out


# --- the report ------------------------------------------------------------------------------


def render_markdown(doc: dict[str, Any], png_name: str | None) -> str:
    p, o = doc["params"], doc["overall"]
    srv, cons, pre, m = doc["server"], doc["consistency"], doc["preload"], doc["metrics"]
    setup = (
        f"{p['clients']} concurrent clients ({p['processes']} worker processes) for "
        f"{p['duration_s']:.0f} s against one `sievedb serve` on {p['host']} "
        f"({p['server_workers']} RPC threads, JSON access log at level {p['server_log_level']}); "
        f"collection {p['n']:,} x {p['dim']} cosine with six synthetic-arXiv attributes; "
        f"{p['upsert_ratio']:.0%} of calls upsert {p['upsert_batch']} points "
        f"({p['new_point_fraction']:.0%} new ids, the rest overwrites), the others are k={p['k']} "
        "searches spread evenly over: unfiltered, and filters of ~50 %, 10 %, 1 %, 0.1 % "
        "selectivity. Latency is per call, client side (it includes queueing in the server)."
    )
    total = (
        f"**Total: {o['calls']:,} calls, {o['ops_per_s']:,.1f} calls/s, "
        f"p50 {o['p50_ms']:.2f} ms, p95 {o['p95_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms; "
        f"errors: {o['errors']}.**"
    )
    errors = ", ".join(f"{k} {v}" for k, v in doc["errors_by_status"].items()) or "none"
    memory = (
        f"RSS at the start of the load phase {srv['rss_mb_load_start']:.1f} MB, at its end "
        f"{srv['rss_mb_load_end']:.1f} MB, highest sample during it "
        f"{srv['rss_mb_load_max']:.1f} MB; peak (VmHWM) over the whole run "
        f"{srv['peak_rss_mb']:.1f} MB. Sampled every second ({len(srv['rss_samples'])} samples, "
        f"in the JSON). Server exit code after SIGTERM: {srv['exit_code']}."
    )
    if srv.get("anon_mb_load"):
        (a0, a1), (f0, f1) = srv["anon_mb_load"], srv["file_mb_load"]
        memory += (
            f" Of the RSS, anonymous memory (heap) went {a0:.1f} → {a1:.1f} MB over the load "
            f"and touched pages of memory-mapped files (LMDB, vectors) {f0:.1f} → {f1:.1f} MB."
        )
    if srv.get("cpu_cores_during_load") is not None:
        memory += (
            f" The server process used {srv['cpu_cores_during_load']:.2f} of the machine's "
            f"{srv['cpu_count']} cores during the load (utime + stime); the client processes "
            "shared the same cores."
        )
    preload = (
        f"Bulk load {pre['bulk_load_s']:.1f} s, fully indexed after {pre['indexed_s']:.1f} s. "
        "Filters per bucket: " + ", ".join(f"{b} {n}" for b, n in pre["filters"].items())
        + "; median selectivity: "
        + ", ".join(f"{b} {v:.2%}" for b, v in pre["selectivity_median"].items()) + "."
    )
    counted = (
        f"Search calls: clients {cons['client_searches']:,}, server "
        f"{cons['server_searches']:,.0f}; Upsert calls: clients {cons['client_upserts']:,}, "
        f"server {cons['server_upserts']:,.0f}."
    )
    if "access_log_lines" in cons:
        counted += (
            f" Access-log lines: {cons['access_log_lines']:,} for "
            f"{cons['server_requests_total']:,.0f} calls counted by the server (health "
            "checks included)."
        )
    plan_rows = [{"plan": k, "queries": int(v)} for k, v in sorted(m["plans"].items())]
    server_ms = ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(m["server_mean_ms"].items()))
    gauges = ", ".join(f"`{k}` {v:,.0f}" for k, v in sorted(m["gauges"].items()))
    per_op_cols = ["op", "calls", "ops_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors"]
    lines = [
        setup, "", total, "", markdown_table(doc["per_op"], per_op_cols), "",
        f"Errors by status: {errors}.", "",
        "## Server memory", "", memory, "",
    ]
    if png_name:
        lines += [f"![RSS and throughput over time]({png_name})", ""]
    lines += [
        "## Preload", "", preload, "",
        "## What the server counted (Prometheus scrape at the end)", "", counted, "",
        "Plans chosen (`sievedb_search_plans_total`):", "",
        markdown_table(plan_rows, ["plan", "queries"]), "",
        f"Server-side mean latency per RPC ({LATENCY_METRIC} sum/count, whole run): {server_ms}.",
        "",
        f"Collection gauges at the end: {gauges}.",
    ]
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = doc["server"]["rss_samples"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    t = [s["t_s"] for s in samples]
    ax1.plot(t, [s["rss_mb"] for s in samples], color="tab:blue", label="VmRSS")
    if "anon_mb" in samples[0]:
        ax1.plot(t, [s["anon_mb"] for s in samples], color="tab:green", label="RssAnon (heap)")
        ax1.plot(t, [s["file_mb"] for s in samples], color="tab:gray", label="RssFile (mmap)")
    start, end = doc["server"]["load_started_s"], doc["server"]["load_ended_s"]
    for ax in (ax1, ax2):
        ax.axvspan(start, end, color="tab:orange", alpha=0.12, label="load phase")
    ax1.set_ylabel("server RSS (MB)")
    ax1.legend(loc="lower right")
    ax1.set_title(
        f"sievedb load test: {doc['params']['clients']} clients, "
        f"{doc['params']['n']:,} x {doc['params']['dim']}"
    )
    per_second = doc["calls_per_second"]
    seconds = np.arange(len(next(iter(per_second.values()), []))) + start
    searches = np.sum([v for k, v in per_second.items() if k.startswith("search")], axis=0)
    ax2.plot(seconds, searches, label="searches/s")
    ax2.plot(seconds, per_second.get("upsert", np.zeros_like(seconds)), label="upserts/s")
    ax2.set_ylabel("calls per second")
    ax2.set_xlabel("seconds since the server started")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    d = LoadParams()
    parser.add_argument("--clients", type=int, default=d.clients)
    parser.add_argument("--processes", type=int, default=d.processes,
                        help="worker processes the clients are spread over")
    parser.add_argument("--duration", type=float, default=d.duration_s, help="seconds of load")
    parser.add_argument("--n", type=int, default=d.n, help="points preloaded")
    parser.add_argument("--dim", type=int, default=d.dim)
    parser.add_argument("--upsert-ratio", type=float, default=d.upsert_ratio)
    parser.add_argument("--upsert-batch", type=int, default=d.upsert_batch)
    parser.add_argument("--new-point-fraction", type=float, default=d.new_point_fraction)
    parser.add_argument("--k", type=int, default=d.k)
    parser.add_argument("--server-workers", type=int, default=d.server_workers)
    parser.add_argument("--server-log-level", default=d.server_log_level,
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--host", default=d.host, help="loopback address to serve on")
    parser.add_argument("--quick", action="store_true", help=f"smoke test: {QUICK}")
    parser.add_argument("--name", default=None, help="results stem (default load_test)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="server data and logs (default: a temporary folder, removed)")
    args = parser.parse_args(argv)
    params = LoadParams(
        clients=args.clients, processes=args.processes, duration_s=args.duration, n=args.n,
        dim=args.dim, upsert_ratio=args.upsert_ratio, upsert_batch=args.upsert_batch,
        new_point_fraction=args.new_point_fraction, k=args.k,
        server_workers=args.server_workers, seed=args.seed, host=args.host,
        server_log_level=args.server_log_level,
    )
    if args.quick:
        params = LoadParams(**{**asdict(params), **QUICK})
    _require_loopback(params.host)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    name = args.name or ("load_test_quick" if args.quick else "load_test")
    # Called with an explicit argv (tests), sys.argv is not this run's command line.
    command = None if argv is None else shlex.join(["python", "-m", __spec__.name, *argv])
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        doc = run(params, args.work_dir, command)
    else:
        with tempfile.TemporaryDirectory(prefix="sievedb-load-") as tmp:
            doc = run(params, Path(tmp), command)
    metrics_text = doc.pop("metrics_text")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{name}_metrics.txt").write_text(metrics_text)
    png = args.out_dir / f"{name}_rss.png"
    plot(doc, png)
    write_results(name, doc, render_markdown(doc, png.name), args.out_dir)
    o = doc["overall"]
    log.info(
        "%d calls, %.1f/s, p50 %.2f ms, p99 %.2f ms, errors %d; results in %s",
        o["calls"], o["ops_per_s"], o["p50_ms"], o["p99_ms"], o["errors"],
        args.out_dir / f"{name}.md",
    )
    return 1 if o["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
