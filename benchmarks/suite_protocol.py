"""The measurement protocol of the FANNS suite, for one system (runs in its own process).

Per k, workload and selectivity bucket (the arXiv FANNS paper's protocol, §5.1–5.4):

1. **Tune** on the tuning subset (the first `tune_queries` of the bucket): run the system's
   sweep settings in YAML order (cheapest first by convention), one run each; stop early once
   a setting reaches `stop_recall` (more beam only costs time) or a setting's mean latency
   exceeds `max_query_ms` (a budget, like big-ann's time limit). The tuner picks the fastest
   measured setting with recall@k ≥ `target_recall` (0.95), else the one with the best recall.
2. **Measure** on the held-out rest: every setting the tuner measured, once (the recall/QPS
   curve); the tuned setting `runs` times (≥ 3), median reported. A slow point gets fewer
   runs if `runs` × its measured cost would exceed `point_budget_s` (recorded in `runs`).
3. **Throughput** at the tuned setting on the held-out queries: batch QPS for systems with a
   batch API (`search_batch` of the whole held-out set, as many runs as the tuned point) and
   QPS with N concurrent threads calling `search` (big-ann style; `thread_runs`, default 1),
   for thread-safe systems.

Timings use `time.perf_counter_ns` around each call, after `warmup` untimed queries; QPS of a
single-thread run is queries / sum of latencies. Every row carries its parameters.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.filterspec import Filter
from benchmarks.groundtruth import mean_recall

__all__ = ["Point", "QuerySlice", "expand_sweep", "pick_tuned", "recall_at", "run_slice"]


@dataclass
class QuerySlice:
    """The queries of one (workload, bucket): vectors, filters and exact top-k ids."""

    workload: str
    bucket: str
    vectors: np.ndarray  # (nq, dim)
    filters: list[Filter | None]
    gt: np.ndarray  # int64 (nq, >= k), padded with -1
    counts: list[int] | None = None  # exact number of rows passing each filter

    def part(self, idx: slice) -> QuerySlice:
        return QuerySlice(self.workload, self.bucket, self.vectors[idx], self.filters[idx],
                          self.gt[idx], None if self.counts is None else self.counts[idx])

    def __len__(self) -> int:
        return len(self.filters)


@dataclass
class Point:
    params: dict[str, Any]
    recall: float
    qps: float
    nanos: np.ndarray
    short: int  # queries answered with fewer than min(k, |allowed|) ids


def recall_at(found: Sequence[np.ndarray], gt: np.ndarray, k: int) -> float:
    """Mean recall@k: |found[:k] ∩ gt[:k]| / min(k, |allowed|) per query
    (`benchmarks.groundtruth.mean_recall`), so a filter passing 3 rows can still score 1."""
    return mean_recall(found, gt, k)


def expand_sweep(cfg: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A system's YAML sweep → settings in order: `{ef: [..], m: [..]}` is a product (last key
    fastest); `settings: [{...}, ...]` is an explicit list; nothing → one empty setting."""
    if not cfg:
        return [{}]
    if "settings" in cfg:
        return [dict(s) for s in cfg["settings"]]
    keys = [k for k in cfg if isinstance(cfg[k], list)]
    if not keys:
        return [{}]
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(cfg[k] for k in keys))]


def pick_tuned(points: Sequence[Point], target: float) -> Point:
    """Fastest point reaching `target` recall; if none does, the best recall (then fastest)."""
    ok = [p for p in points if p.recall >= target]
    if ok:
        return max(ok, key=lambda p: p.qps)
    return max(points, key=lambda p: (p.recall, p.qps))


def _single(system: Any, qs: QuerySlice, k: int, warmup: int,
            budget_s: float = float("inf")) -> tuple[np.ndarray, list[Any]]:
    """Per-query nanoseconds and answers; stops early (a prefix) once `budget_s` is spent."""
    for i in range(min(warmup, len(qs))):
        system.search(qs.vectors[i], qs.filters[i], k)
    nanos = np.empty(len(qs), dtype=np.int64)
    found: list[Any] = []
    clock = time.perf_counter_ns
    limit = budget_s * 1e9
    spent = 0
    for i in range(len(qs)):
        t0 = clock()
        out = system.search(qs.vectors[i], qs.filters[i], k)
        nanos[i] = clock() - t0
        found.append(out)
        spent += int(nanos[i])
        if spent > limit:
            break
    return nanos[: len(found)], found


def _point(system: Any, params: dict[str, Any], qs: QuerySlice, k: int, warmup: int,
           budget_s: float = float("inf")) -> Point:
    system.set_query_params(**params)
    nanos, found = _single(system, qs, k, warmup, budget_s)
    done = qs.part(slice(0, len(found)))
    total = float(nanos.sum()) / 1e9
    truth_sizes = (done.gt[:, :k] >= 0).sum(axis=1)
    short = int(sum(1 for f, t in zip(found, truth_sizes, strict=True) if len(f) < t))
    return Point(params, recall_at(found, done.gt, k), len(found) / total if total else 0.0,
                 nanos, short)


def _latency(nanos: np.ndarray) -> dict[str, float]:
    ms = nanos.astype(np.float64) / 1e6
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def _threads(system: Any, qs: QuerySlice, k: int, n_threads: int) -> tuple[float, float]:
    """(QPS, recall) with `n_threads` threads pulling queries from one shared counter."""
    found: list[Any] = [None] * len(qs)
    counter = itertools.count()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                i = next(counter)
            if i >= len(qs):
                return
            try:
                found[i] = system.search(qs.vectors[i], qs.filters[i], k)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                errors.append(exc)
                return

    workers = [threading.Thread(target=worker) for _ in range(n_threads)]
    t0 = time.perf_counter_ns()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = (time.perf_counter_ns() - t0) / 1e9
    if errors:
        raise errors[0]
    return len(qs) / wall, recall_at(found, qs.gt, k)


def run_slice(
    system: Any,
    sweep: list[dict[str, Any]],
    qs: QuerySlice,
    k: int,
    proto: dict[str, Any],
    progress: Any = None,
) -> list[dict[str, Any]]:
    """Tune on the tuning subset, measure on the rest; rows for the results document."""
    n_tune = min(int(proto["tune_queries"]), len(qs) - 1)
    tune, held = qs.part(slice(0, n_tune)), qs.part(slice(n_tune, None))
    target, stop = float(proto["target_recall"]), float(proto.get("stop_recall", 0.995))
    max_ms = float(proto.get("max_query_ms", 1e9))
    warmup, runs = int(proto.get("warmup", 3)), int(proto["runs"])
    base = {"workload": qs.workload, "bucket": qs.bucket, "k": k, "system": system.name}
    stats = getattr(system, "stats", None)
    tuned_points: list[Point] = []
    budget = float(proto.get("point_budget_s", 1e9))
    for params in sweep:
        p = _point(system, params, tune, k, warmup, budget)
        tuned_points.append(p)
        if progress is not None:
            progress.update(1)
        if p.recall >= stop or float(np.mean(p.nanos)) / 1e6 > max_ms:
            break
    if stats:
        stats()  # plan counts of the tuning phase are not reported
    best = pick_tuned(tuned_points, target)
    rows: list[dict[str, Any]] = []
    for tp in tuned_points:
        rows.append({**base, "phase": "tune", "mode": "single", "params": tp.params,
                     "queries": len(tp.nanos), "runs": 1, "recall": tp.recall, "qps": tp.qps,
                     **_latency(tp.nanos), "short_results": tp.short})
    if len(held) == 0:
        return rows
    best_runs = runs
    truncated = False
    for tp in tuned_points:
        is_best = tp is best
        one = float(np.mean(tp.nanos)) / 1e9 * len(held)  # one held-out run, s
        n_runs = max(1, min(runs, int(budget // max(one, 1e-9)))) if is_best else 1
        if is_best:
            best_runs = n_runs
        # A point slower than the budget is measured on the prefix of the held-out queries
        # that fits in it (`queries` says how many), like a time limit.
        measured = [_point(system, tp.params, held, k, warmup, budget) for _ in range(n_runs)]
        if is_best:
            truncated = len(measured[0].nanos) < len(held)
        extra = stats() if stats else {}
        qps = [m.qps for m in measured]
        mid = measured[int(np.argsort(qps)[len(qps) // 2])]
        row = {**base, "phase": "tuned" if is_best else "curve", "mode": "single",
               "params": tp.params, "queries": len(mid.nanos), "runs": n_runs,
               "recall": float(np.median([m.recall for m in measured])),
               "qps": float(np.median(qps)), "qps_runs": qps,
               "tune_recall": tp.recall, **_latency(mid.nanos),
               "short_results": mid.short, **extra}
        rows.append(row)
        if progress is not None:
            progress.update(1)
    # Throughput at the tuned setting (skipped when even one single-thread pass was cut short).
    if truncated:
        return rows
    system.set_query_params(**best.params)
    if getattr(system, "has_batch", False) and proto.get("batch", True):
        walls, recalls = [], []
        for _ in range(best_runs):
            t0 = time.perf_counter_ns()
            found = system.search_batch(held.vectors, held.filters, k)
            walls.append((time.perf_counter_ns() - t0) / 1e9)
            recalls.append(recall_at(found, held.gt, k))
        rows.append({**base, "phase": "tuned", "mode": "batch", "params": best.params,
                     "queries": len(held), "runs": len(walls),
                     "recall": float(np.median(recalls)),
                     "qps": float(np.median([len(held) / w for w in walls]))})
        if stats:
            stats()
    if getattr(system, "thread_safe", False):
        for n_threads in proto.get("threads", []) or []:
            res = [_threads(system, held, k, int(n_threads))
                   for _ in range(int(proto.get("thread_runs", 1)))]
            rows.append({**base, "phase": "tuned", "mode": "threads",
                         "threads": int(n_threads), "params": best.params,
                         "queries": len(held), "runs": len(res),
                         "recall": float(np.median([r[1] for r in res])),
                         "qps": float(np.median([r[0] for r in res]))})
        if stats:
            stats()
    return rows
