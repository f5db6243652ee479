"""`sievedb demo`: a real server in-process, a seeded dataset, and measured filtered queries.

    sievedb demo                       # 100k vectors, dim 64, data under ./sievedb-data/
    sievedb demo --n 20000 --dim 128 --data-dir /tmp/demo

What it does, all through the public client over a real gRPC channel:

1. starts a sievedb server on 127.0.0.1, port 0 (the server package is imported lazily, so
   the client package keeps importing without hnswlib / lmdb);
2. (re)creates collection `demo` with schema category:keyword, year:integer,
   tags:keyword_list and loads `--n` seeded clustered vectors in batches, reporting
   vectors/s (client encoding + RPC + LMDB commit + HNSW insertion, end to end);
3. for each query (unfiltered, then filters from broad to very selective) runs `--queries`
   held-out query vectors twice: as planned by the server (with `explain`, to read the
   strategy and |allowed|) and as an exact scan (`exact=True`, the oracle); prints recall@10
   of the planned answer against the exact one and client-observed round-trip latency
   percentiles (`time.perf_counter_ns`);
4. checks the server's exact answer against a numpy brute force for the unfiltered queries;
5. shuts the server down gracefully.

Every figure printed is measured during the run. `run_demo()` is the same thing as a function
(the tests call it with a small `n`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from sievedb.client import Client
from sievedb.synthetic import clustered_vectors, demo_attributes
from sievedb.types import SearchResult

__all__ = ["DEFAULT_QUERIES", "DemoReport", "QueryRow", "add_parser", "run", "run_demo"]

COLLECTION = "demo"
SCHEMA = {"category": "keyword", "year": "integer", "tags": "keyword_list"}
METRIC = "cosine"
DEFAULT_N = 100_000
DEFAULT_DIM = 64
# >= 50 so that p99 means something; more mostly lengthens the exact-scan rows.
DEFAULT_QUERY_COUNT = 50
DEFAULT_BATCH = 5_000
IN_FLIGHT = 2
MAX_BATCH_BYTES = 16 * 1024 * 1024
# Half the server default (200): ~2x faster graph build for 100k points; recall@10 is
# printed, so the trade is visible.
DEFAULT_EF_CONSTRUCTION = 100
K = 10

# (label, filter expression) from broad to very selective; None = unfiltered.
DEFAULT_QUERIES: tuple[tuple[str, str], ...] = (
    ("broad", "year >= 2005"),
    ("category", 'category == "cs.LG"'),
    ("combined", 'category == "cs.LG" and year between 2015 and 2019 and "rag" in tags'),
    ("needle", 'category == "q-bio" and year == 2011 and "theory" in tags and "graphs" in tags'),
)


@dataclass(frozen=True)
class QueryRow:
    """The measurements of one query shape over all query vectors."""

    label: str
    filter: str | None
    allowed: int
    total: int
    strategies: dict[str, int]
    recall: float | None  # mean recall@k against the exact scan; None for the exact row itself
    p50_ms: float
    p99_ms: float
    exact_p50_ms: float


@dataclass
class DemoReport:
    n: int
    dim: int
    queries: int
    load_seconds: float = 0.0
    load_rate: float = 0.0
    query_seconds: float = 0.0
    rows: list[QueryRow] = field(default_factory=list)
    oracle_recall: float = 0.0  # server exact vs numpy brute force, unfiltered
    wall_seconds: float = 0.0


# --- CLI contract ----------------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="load a seeded synthetic dataset and run example filtered queries",
        description=(
            "Start a sievedb server in this process, load a seeded clustered dataset through "
            "the client and print recall@10 against the exact scan and latency percentiles "
            "for unfiltered and filtered queries, with the planner's strategy for each."
        ),
    )
    p.add_argument(
        "--data-dir",
        default="sievedb-data",
        help="server data directory (default ./%(default)s; collection 'demo' is recreated)",
    )
    p.add_argument("--n", type=_positive, default=DEFAULT_N, help="vectors (default %(default)s)")
    p.add_argument(
        "--dim", type=_positive, default=DEFAULT_DIM, help="dimension (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.add_argument(
        "--queries",
        type=_positive,
        default=DEFAULT_QUERY_COUNT,
        help="query vectors per row (default %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive,
        default=DEFAULT_BATCH,
        help="points per upsert request (default %(default)s)",
    )
    p.add_argument(
        "--ef-construction",
        type=_positive,
        default=DEFAULT_EF_CONSTRUCTION,
        help="HNSW build beam (default %(default)s, half the server default, to keep the "
        "demo's load quick; recall is measured either way)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    run_demo(
        Path(args.data_dir),
        n=args.n,
        dim=args.dim,
        seed=args.seed,
        queries=args.queries,
        batch_size=args.batch_size,
        ef_construction=args.ef_construction,
    )
    return 0


# --- the demo --------------------------------------------------------------------------------


def run_demo(
    data_dir: Path | str = "sievedb-data",
    *,
    n: int = DEFAULT_N,
    dim: int = DEFAULT_DIM,
    seed: int = 0,
    queries: int = DEFAULT_QUERY_COUNT,
    batch_size: int = DEFAULT_BATCH,
    ef_construction: int | None = DEFAULT_EF_CONSTRUCTION,
    filters: Sequence[tuple[str, str]] = DEFAULT_QUERIES,
    out: TextIO | None = None,
    progress: TextIO | None = None,
) -> DemoReport:
    """Run the whole demo against a fresh in-process server; print to `out` (stdout)."""
    out = out if out is not None else sys.stdout
    progress = progress if progress is not None else sys.stderr
    started = time.perf_counter_ns()
    try:
        from sievedb_server.transport.server import create_server
    except ImportError as exc:
        from sievedb.cli import CliError

        raise CliError(
            f"the demo needs the server ({exc}); install it with: pip install 'sievedb[server]'"
        ) from None

    data_path = Path(data_dir)
    data_path.mkdir(parents=True, exist_ok=True)
    report = DemoReport(n=n, dim=dim, queries=queries)

    vectors, assign = clustered_vectors(n + queries, dim, seed=seed)
    base, query_vecs = vectors[:n], vectors[n:]
    attributes = demo_attributes(assign[:n], seed=seed)

    server, port = create_server("127.0.0.1:0", data_path, max_workers=8)
    server.start()
    _say(out, f"sievedb server on 127.0.0.1:{port}, data in {data_path.resolve()}")
    try:
        with Client(f"127.0.0.1:{port}", timeout=120.0) as db:
            db.drop_collection(COLLECTION, missing_ok=True)
            info = db.create_collection(
                COLLECTION, dim, METRIC, ef_construction=ef_construction, schema=SCHEMA
            )
            hnsw = info.hnsw
            _say(
                out,
                f"collection {COLLECTION!r}: dim {dim}, {METRIC}, HNSW m={hnsw.m} "
                f"ef_construction={hnsw.ef_construction} ef_search={hnsw.ef_search}, "
                f"schema {', '.join(f'{k}:{v}' for k, v in SCHEMA.items())}",
            )
            _load(db, base, attributes, batch_size, report, out, progress)
            query_started = time.perf_counter_ns()
            searches = _query_all(db, base, query_vecs, filters, report)
            report.query_seconds = (time.perf_counter_ns() - query_started) / 1e9
            _say(out, f"ran {searches:,} searches in {report.query_seconds:.1f} s")
    finally:
        stop_started = time.perf_counter_ns()
        server.shutdown(grace=5.0)
        stop_ms = (time.perf_counter_ns() - stop_started) / 1e6
    _print_report(report, out)
    report.wall_seconds = (time.perf_counter_ns() - started) / 1e9
    _say(out, f"server stopped cleanly in {stop_ms:.0f} ms; demo took {report.wall_seconds:.1f} s")
    return report


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def _load(
    db: Client,
    base: np.ndarray,
    attributes: list[dict[str, object]],
    batch_size: int,
    report: DemoReport,
    out: TextIO,
    progress: TextIO,
) -> None:
    n = len(base)
    # Keep each request's vectors well inside the server's default 64 MiB message limit.
    batch_size = max(1, min(batch_size, MAX_BATCH_BYTES // (4 * base.shape[1])))
    tty = progress.isatty()
    next_report = 0.0
    done = 0

    def send(start: int) -> int:
        stop = min(start + batch_size, n)
        db.upsert(
            COLLECTION,
            np.arange(start, stop, dtype=np.uint64),
            base[start:stop],
            attributes[start:stop],
            batch_size=batch_size,
        )
        return stop - start

    t0 = time.perf_counter_ns()
    # Two requests in flight: the client encodes the next batch while the server inserts one.
    with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="demo-load") as pool:
        futures = [pool.submit(send, s) for s in range(0, n, batch_size)]
        try:
            for future in as_completed(futures):
                done += future.result()
                elapsed = (time.perf_counter_ns() - t0) / 1e9
                rate = done / elapsed if elapsed > 0 else 0.0
                line = (
                    f"loading: {done:>{len(str(n))}}/{n} vectors ({done / n:4.0%}), "
                    f"{rate:,.0f} vectors/s"
                )
                if tty:
                    print("\r" + line, end="", file=progress, flush=True)
                elif done / n >= next_report or done == n:
                    print(line, file=progress, flush=True)
                    next_report += 0.25
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    if tty:
        print(file=progress, flush=True)
    report.load_seconds = (time.perf_counter_ns() - t0) / 1e9
    report.load_rate = n / report.load_seconds if report.load_seconds > 0 else 0.0
    _say(
        out,
        f"loaded {n:,} vectors (dim {base.shape[1]}, {METRIC}) in {report.load_seconds:.1f} s: "
        f"{report.load_rate:,.0f} vectors/s (batches of {batch_size}, {IN_FLIGHT} in flight; "
        "LMDB commit + HNSW insert per batch)",
    )


def _timed(
    db: Client, query_vecs: np.ndarray, flt: str | None, *, exact: bool
) -> tuple[list[SearchResult], np.ndarray]:
    # One untimed call first so channel set-up and cold caches do not land in the percentiles.
    db.search(COLLECTION, query_vecs[0], K, filter=flt, exact=exact, with_attributes=False)
    results: list[SearchResult] = []
    nanos = np.empty(len(query_vecs), dtype=np.int64)
    for i, q in enumerate(query_vecs):
        t = time.perf_counter_ns()
        results.append(
            db.search(
                COLLECTION, q, K, filter=flt, exact=exact, explain=True, with_attributes=False
            )
        )
        nanos[i] = time.perf_counter_ns() - t
    return results, nanos


def _recall(found: Sequence[SearchResult], truth: Sequence[SearchResult]) -> float:
    per_query = []
    for got, want in zip(found, truth, strict=True):
        want_ids = set(want.ids.tolist())
        if want_ids:
            per_query.append(len(want_ids & set(got.ids.tolist())) / len(want_ids))
    return float(np.mean(per_query)) if per_query else 1.0


def _row(
    label: str,
    flt: str | None,
    planned: list[SearchResult],
    nanos: np.ndarray,
    truth: list[SearchResult],
    exact_nanos: np.ndarray,
    *,
    recall: float | None,
) -> QueryRow:
    plans = [r.plan for r in planned if r.plan is not None]
    strategies = Counter(p.strategy for p in plans)
    return QueryRow(
        label=label,
        filter=flt,
        allowed=plans[0].allowed if plans else 0,
        total=plans[0].total if plans else 0,
        strategies=dict(strategies.most_common()),
        recall=recall,
        p50_ms=float(np.percentile(nanos, 50)) / 1e6,
        p99_ms=float(np.percentile(nanos, 99)) / 1e6,
        exact_p50_ms=float(np.percentile(exact_nanos, 50)) / 1e6,
    )


def _query_all(
    db: Client,
    base: np.ndarray,
    query_vecs: np.ndarray,
    filters: Sequence[tuple[str, str]],
    report: DemoReport,
) -> int:
    """Measure every row into `report`; returns the number of searches sent (with warm-ups)."""
    truth, exact_nanos = _timed(db, query_vecs, None, exact=True)
    planned, nanos = _timed(db, query_vecs, None, exact=False)
    report.rows.append(
        _row("no filter", None, planned, nanos, truth, exact_nanos, recall=_recall(planned, truth))
    )
    report.rows.append(
        _row("no filter, exact", None, truth, exact_nanos, truth, exact_nanos, recall=None)
    )
    report.oracle_recall = _numpy_recall(base, query_vecs, truth)
    for label, flt in filters:
        truth, exact_nanos = _timed(db, query_vecs, flt, exact=True)
        planned, nanos = _timed(db, query_vecs, flt, exact=False)
        report.rows.append(
            _row(label, flt, planned, nanos, truth, exact_nanos, recall=_recall(planned, truth))
        )
    return (2 + 2 * len(filters)) * (len(query_vecs) + 1)


def _numpy_recall(base: np.ndarray, query_vecs: np.ndarray, truth: list[SearchResult]) -> float:
    """Recall@k of the server's exact scan against an independent numpy brute force (cosine)."""
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = query_vecs / np.linalg.norm(query_vecs, axis=1, keepdims=True)
    k = min(K, len(base))
    top = np.argsort(-(q @ b.T), axis=1)[:, :k]
    hits = [
        len(set(row.tolist()) & set(r.ids.tolist())) / k for row, r in zip(top, truth, strict=True)
    ]
    return float(np.mean(hits))


# --- output ----------------------------------------------------------------------------------


def _strategy_text(strategies: dict[str, int]) -> str:
    if len(strategies) == 1:
        return next(iter(strategies))
    return ", ".join(f"{name} ×{count}" for name, count in strategies.items())


def _print_report(report: DemoReport, out: TextIO) -> None:
    from sievedb.cli import print_table

    headers = ["query", "|allowed|", "strategy", f"recall@{K}", "p50 ms", "p99 ms", "exact p50 ms"]
    rows = []
    for r in report.rows:
        share = r.allowed / r.total if r.total else 0.0
        rows.append(
            [
                r.filter or f"({r.label})",
                f"{r.allowed:,} ({share:.2%})",
                _strategy_text(r.strategies),
                "oracle" if r.recall is None else f"{r.recall:.3f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.exact_p50_ms:.2f}",
            ]
        )
    _say(out, "")
    _say(
        out,
        f"{report.queries} held-out queries per row, k={K}; latency = client round trip over "
        f"gRPC on 127.0.0.1; recall against the server's exact scan (exact=True)",
    )
    _say(out, "")
    with contextlib.redirect_stdout(out):  # print_table writes to stdout
        print_table(headers, rows)
    _say(out, "")
    _say(
        out,
        f"exact scan vs numpy brute force (no filter): recall@{K} {report.oracle_recall:.3f}",
    )
