"""Filtered k-NN: recall@10 vs QPS per selectivity bucket, sievedb against its baselines.

    python -m benchmarks.bench_filtered           # the committed run (workloads/filtered.yaml)
    python -m benchmarks.bench_filtered --quick   # smoke test: 10k vectors, 20 queries/bucket

Systems (all single-threaded at query time, one run, the same queries):

* `sievedb` — the in-process `Engine` (filter parse + validation, bitmap resolution of the
  allowed set, the planner's strategy, hit materialisation), at the collection default ef and
  a few other ef values; the plan strategy of every query is recorded.
* `sievedb_grpc` — the same engine behind its gRPC server, client on loopback, filter sent
  as text (in the same process, so the client and the server share the GIL).
* `numpy_exact` — exact scan of the allowed rows.
* `hnswlib_filter` — hnswlib `knn_query(filter=...)` with a bytearray membership callback.
* `hnswlib_postfilter` — unfiltered hnswlib for k·multiplier candidates, keep allowed ones.
* `faiss_hnsw` — FAISS `IndexHNSWFlat` with `SearchParametersHNSW(sel=IDSelectorBitmap)`.

Each baseline runs twice: handed the allowed set for free (an oracle), and as `<system>+filter`,
evaluating each query's filter with numpy over the attribute columns first (the like-for-like
row: sievedb computes its allowed set from its attribute indexes on every query).

Every configuration runs `passes` passes over all queries; a query's latency is its median over
the passes. The timing is interleaved bucket by bucket: within a pass, every configuration runs
one bucket's queries (in an order rotated per bucket and pass, each after the caches are
evicted and a short warm-up on other queries) before any moves on to the next bucket, so the
slow spells of a shared machine hit all systems alike (see `_timed_interleaved`).
Results: `results/<name>.json`, `.md` and `.png` (recall-vs-QPS per bucket and variant).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.adapters.baselines import knn_up_to
from benchmarks.datasets.synthetic_arxiv import SyntheticArxiv, make_dataset
from benchmarks.filtered_queries import Bucket, FilteredQuery, build_queries, ground_truth
from benchmarks.filtered_report import plot_recall_qps, render_markdown
from benchmarks.harness import (
    BENCH_DIR,
    CACHE_DIR,
    RESULTS_DIR,
    Timer,
    command_line,
    environment,
    latency_summary,
    quiet_server_logs,
    recall_at_k,
    time_each,
    write_results,
)
from benchmarks.systems import faiss_hnsw, grpc_server, hnswlib_index, sievedb_engine

__all__ = ["SCHEMA_FIELDS", "load_workload", "main", "open_sievedb", "run"]

log = logging.getLogger("bench_filtered")

WORKLOAD = BENCH_DIR / "workloads" / "filtered.yaml"
WARMUP = 5
SCHEMA_FIELDS = (
    ("main_category", "KEYWORD"),
    ("sub_categories", "KEYWORD_LIST"),
    ("number_of_authors", "INTEGER"),
    ("update_date", "DATETIME"),
    ("license", "KEYWORD"),
    ("has_comment", "BOOLEAN"),
)

Runner = Callable[[int], list[int]]


def load_workload(path: Path = WORKLOAD, *, quick: bool = False) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    quick_over = doc.pop("quick", {})
    if quick:
        for key, value in quick_over.items():
            if isinstance(value, dict):
                doc[key] = {**doc.get(key, {}), **value}
            else:
                doc[key] = value
    return doc


def _schema() -> tuple[Any, ...]:
    from sievedb_server.core.types import FieldSpec, FieldType

    return tuple(FieldSpec(name, FieldType[t]) for name, t in SCHEMA_FIELDS)


def open_sievedb(
    data: SyntheticArxiv, *, m: int, ef_construction: int, cache_dir: Path
) -> tuple[str, Any, dict[str, Any]]:
    """(collection name, open Engine, build info) for a synthetic arXiv dataset (cached)."""
    name = f"arxiv_{data.variant}"
    engine, info = sievedb_engine(
        name, data.base, m=m, ef_construction=ef_construction, schema=_schema(),
        records=data.attributes.to_records, cache_dir=cache_dir,
        extra_key=f"{data.variant}-{data.seed}",
    )
    # Recorded next to the build: sievedb's graph block on huge pages (index/hugepages.py);
    # the baselines' indexes keep their libraries' allocation.
    info = {**info, "graph_huge_page_mib": engine.collection(name).graph.huge_page_bytes / 2**20}
    return name, engine, info


@dataclass
class _Job:
    """One system configuration to time: its runner and, for sievedb, where plans land."""

    system: str
    params: dict[str, Any]
    runner: Runner
    plans: list[str] | None = None
    stages: list[dict[str, int]] | None = None


class _Evictor:
    """Reads a buffer larger than the last-level cache: what a job's previous queries (or
    another job's) left in cache is gone, as after a stream of queries with other filters."""

    def __init__(self, megabytes: int) -> None:
        self.buffer = np.ones(max(megabytes, 0) * (1 << 20) // 8, dtype=np.uint64)

    def __call__(self) -> None:
        if self.buffer.size:
            np.add.reduce(self.buffer)


def _timed_interleaved(
    jobs: Sequence[_Job],
    n: int,
    passes: int,
    blocks: Sequence[Sequence[int]] | None = None,
    evict: Callable[[], None] | None = None,
) -> list[tuple[np.ndarray, list[list[int]]]]:
    """Per job, per-query latency: the median over `passes` passes over all `n` queries.

    A pass goes block by block (a block: one bucket's queries). Within a block every job runs
    the block's queries back to back, in an order rotated from block to block and pass to
    pass, each job after `evict()` (its rows start cold) and WARMUP queries of another block
    (its code paths warm). A block lasts milliseconds to about a second, so the slow spells of
    a shared machine fall on every job alike; when each job ran all its queries in one go
    (seconds), identical configurations differed by a third within a run (eadfe7c).
    """
    blocks = [list(b) for b in blocks] if blocks else [list(range(n))]
    rounds: list[list[np.ndarray]] = [[] for _ in jobs]
    found: list[list[list[int]]] = [[[] for _ in range(n)] for _ in jobs]
    turn = 0
    for p in range(max(passes, 1)):
        for j in range(len(jobs)):
            rounds[j].append(np.zeros(n, dtype=np.int64))
        for b, block in enumerate(blocks):
            warm = blocks[(b + 1) % len(blocks)][:WARMUP]
            shift = turn % max(len(jobs), 1)
            turn += 1
            for j in list(range(shift, len(jobs))) + list(range(shift)):
                runner = jobs[j].runner
                if evict is not None:
                    evict()
                for i in warm:
                    runner(i)
                nanos, outs = time_each(lambda x, r=runner, q=block: r(q[x]), len(block))
                rounds[j][p][block] = nanos
                if p == 0:
                    for i, out in zip(block, outs):
                        found[j][i] = out
        log.info("pass %d of %d done", p + 1, max(passes, 1))
    return [
        (np.median(np.stack(r), axis=0).astype(np.int64), f) for r, f in zip(rounds, found)
    ]


def _rows_for(
    system: str,
    params: dict[str, Any],
    fq: Sequence[FilteredQuery],
    gt: np.ndarray,
    k: int,
    nanos: np.ndarray,
    found: list[list[int]],
    strategies: list[str] | None = None,
    stages: list[dict[str, int]] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    buckets = list(dict.fromkeys(q.bucket for q in fq))
    for b in buckets:
        idx = [i for i, q in enumerate(fq) if q.bucket == b]
        short = sum(1 for i in idx if len(found[i]) < min(k, fq[i].count))
        row: dict[str, Any] = {
            "bucket": b,
            "system": system,
            "params": params,
            "recall": recall_at_k([found[i] for i in idx], [gt[i] for i in idx], k),
            **latency_summary(nanos[idx]),
            "short_results": short,
        }
        if strategies is not None:
            row["strategies"] = dict(Counter(strategies[i] for i in idx).most_common())
            # Median latency per chosen strategy: which plan paid off in this bucket.
            row["p50_ms_by_strategy"] = {
                s: float(np.median([nanos[i] for i in idx if strategies[i] == s])) / 1e6
                for s in row["strategies"]
            }
        if stages is not None:
            names = sorted({n for i in idx for n in stages[i]})
            row["stage_p50_ms"] = {
                n: float(np.median([stages[i].get(n, 0) for i in idx])) / 1e6 for n in names
            }
        rows.append(row)
    return rows


def _run_variant(
    wl: dict[str, Any], variant: str, cache_dir: Path, data: SyntheticArxiv | None = None
) -> dict[str, Any]:
    from sievedb_server.core.types import SearchParams
    from sievedb_server.filters.parser import parse
    from sievedb_server.index import hugepages

    ds, ix, k = wl["dataset"], wl["index"], int(wl["k"])
    passes = int(wl.get("passes", 1))
    systems = wl["systems"]
    n, dim, nqv, seed = int(ds["n"]), int(ds["dim"]), int(ds["query_vectors"]), int(ds["seed"])
    data = data or make_dataset(n, dim, nqv, variant=variant, seed=seed)
    base, qvecs, attrs = data.base, data.queries, data.attributes
    buckets = [Bucket(**b) for b in wl["buckets"]]
    with Timer() as t_q:
        fq = build_queries(attrs, nqv, buckets, int(wl["queries_per_bucket"]), seed=seed)
    with Timer() as t_gt:
        gt = ground_truth(base, qvecs, fq, k, cache_dir=cache_dir,
                          key_parts=("synthetic_arxiv", n, dim, nqv, seed, variant))
    log.info("%s: %d queries (%.1fs), ground truth %.1fs", variant, len(fq), t_q.seconds,
             t_gt.seconds)
    m, efc = int(ix["m"]), int(ix["ef_construction"])
    name, engine, sv_build = open_sievedb(data, m=m, ef_construction=efc, cache_dir=cache_dir)
    log.info("%s: sievedb loaded %s", variant, sv_build)
    rows: list[dict[str, Any]] = []
    builds: dict[str, Any] = {"sievedb": sv_build}
    jobs: list[_Job] = []
    # sievedb (and its gRPC server) stay open until every configuration has been timed.
    with ExitStack() as open_systems:
        open_systems.callback(engine.close)
        # Both sides must agree on every filter's semantics before anything is timed.
        flts = [parse(q.expr) for q in fq]
        mismatches = [
            (q.expr, q.count, got)
            for q, f in zip(fq, flts)
            if (got := engine.count(name, f)) != q.count
        ]
        if mismatches:
            raise RuntimeError(f"sievedb and numpy disagree on {len(mismatches)} filters, "
                               f"e.g. {mismatches[:3]}")

        for ef in systems.get("sievedb", {}).get("ef", [None]):
            params = SearchParams(k=k, ef=ef, with_attributes=False, explain=True)
            plans: list[str] = [""] * len(fq)
            stages: list[dict[str, int]] = [{} for _ in fq]

            def sievedb_run(
                i: int, params: Any = params, plans: list[str] = plans,
                stages: list[dict[str, int]] = stages,
            ) -> list[int]:
                q = fq[i]
                res = engine.search(name, qvecs[q.query_row], params, flts[i])
                if res.plan is not None:
                    plans[i] = res.plan.strategy
                    stages[i] = {st.name: st.nanos for st in res.plan.stages}
                return [int(h.id) for h in res.hits]

            jobs.append(_Job("sievedb", {"ef": ef}, sievedb_run, plans, stages))

        if "sievedb_grpc" in systems:
            tmp = open_systems.enter_context(tempfile.TemporaryDirectory())
            client = open_systems.enter_context(grpc_server(engine, Path(tmp)))
            for ef in systems["sievedb_grpc"].get("ef", [None]):
                def grpc_run(i: int, ef: Any = ef, client: Any = client) -> list[int]:
                    q = fq[i]
                    res = client.search(name, qvecs[q.query_row], k=k, filter=q.expr,
                                        ef=ef, with_attributes=False)
                    return [int(h.id) for h in res]

                jobs.append(_Job("sievedb_grpc", {"ef": ef}, grpc_run))

        # Baselines run in two modes. "given": the allowed set is handed over for free (an
        # oracle, the most flattering number for them). "per_query" (system name + "+filter"):
        # each query first evaluates its filter with numpy over the attribute columns and builds
        # what the library needs (ids, a bytearray, a FAISS bitmap), as a user of a plain vector
        # library must; sievedb always pays its own filter evaluation: the like-for-like row.
        hnsw_index = None
        if "hnswlib_filter" in systems or "hnswlib_postfilter" in systems:
            hnsw_index, builds["hnswlib"] = hnswlib_index(base, m=m, ef_construction=efc,
                                                          cache_dir=cache_dir)
        findex = None
        if "faiss_hnsw" in systems:
            import faiss

            findex, builds["faiss"] = faiss_hnsw(base, m=m, ef_construction=efc,
                                                 cache_dir=cache_dir)
            faiss.omp_set_num_threads(1)
        given_masks = [np.zeros(n, dtype=np.uint8) for _ in fq]
        for mask, q in zip(given_masks, fq):
            mask[q.allowed] = 1

        for mode in wl.get("filter_cost", ["given", "per_query"]):
            suffix = "" if mode == "given" else "+filter"

            def mask_u8(i: int, mode: str = mode) -> np.ndarray:
                return given_masks[i] if mode == "given" else fq[i].mask_fn().view(np.uint8)

            def allowed_ids(i: int, mode: str = mode) -> np.ndarray:
                return fq[i].allowed if mode == "given" else np.flatnonzero(fq[i].mask_fn())

            if "numpy_exact" in systems:
                def numpy_run(i: int, allowed_ids: Any = allowed_ids) -> list[int]:
                    q = fq[i]
                    allowed = allowed_ids(i)
                    v = qvecs[q.query_row]
                    if allowed.size * 4 > n:  # dense: one mat-vec over all beats the gather
                        scores = (base @ v)[allowed]
                    else:
                        scores = base[allowed] @ v
                    kk = min(k, allowed.size)
                    part = np.argpartition(-scores, kk - 1)[:kk]
                    return allowed[part[np.argsort(-scores[part])]].tolist()

                jobs.append(_Job("numpy_exact" + suffix, {}, numpy_run))

            if hnsw_index is not None:
                index = hnsw_index
                given_bytes = [bytearray(mask.tobytes()) for mask in given_masks]
                for ef in systems.get("hnswlib_filter", {}).get("ef", []):
                    def hf_run(i: int, ef: int = ef, mode: str = mode, mask_u8: Any = mask_u8,
                               given_bytes: Any = given_bytes, index: Any = index) -> list[int]:
                        q = fq[i]
                        bm = (given_bytes[i] if mode == "given"
                              else bytearray(mask_u8(i).tobytes()))
                        kk = min(k, q.count)
                        index.set_ef(max(ef, kk))
                        try:
                            labels, _ = index.knn_query(
                                qvecs[q.query_row], k=kk, num_threads=1,
                                filter=lambda label: bm[label] == 1,
                            )
                        except RuntimeError:  # hnswlib found fewer than kk allowed points
                            return []
                        return labels[0].tolist()

                    jobs.append(_Job("hnswlib_filter" + suffix, {"ef": ef}, hf_run))
                pf = systems.get("hnswlib_postfilter", {})
                for ef in pf.get("ef", []):
                    for mult in pf.get("fetch_multiplier", []):
                        def pf_run(i: int, ef: int = ef, mult: float = mult,
                                   mask_u8: Any = mask_u8, index: Any = index) -> list[int]:
                            q, mask = fq[i], mask_u8(i)
                            fetch = min(n, int(k * mult))
                            index.set_ef(max(ef, fetch))
                            lab = knn_up_to(index, qvecs[q.query_row], fetch)
                            return lab[mask[lab] == 1][:k].tolist()

                        jobs.append(_Job("hnswlib_postfilter" + suffix,
                                         {"ef": ef, "fetch_multiplier": mult}, pf_run))

            if findex is not None:
                import faiss

                given_packed = [np.packbits(mask, bitorder="little") for mask in given_masks]
                given_selectors = [faiss.IDSelectorBitmap(n, faiss.swig_ptr(p))
                                   for p in given_packed]
                for ef in systems["faiss_hnsw"].get("ef", []):
                    # The selectors point into `given_packed`: the closure keeps it alive
                    # until the interleaved timing has run.
                    def faiss_run(i: int, ef: int = ef, mode: str = mode, mask_u8: Any = mask_u8,
                                  given_selectors: Any = given_selectors,
                                  given_packed: Any = given_packed,
                                  findex: Any = findex) -> list[int]:
                        q = fq[i]
                        if mode == "given":
                            sel = given_selectors[i]
                        else:
                            packed = np.packbits(mask_u8(i), bitorder="little")
                            sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(packed))
                        sp = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]
                            sel=sel, efSearch=ef
                        )
                        _, labels = findex.search(qvecs[q.query_row][None, :], k, params=sp)
                        lab = labels[0]
                        return lab[lab >= 0].tolist()

                    jobs.append(_Job("faiss_hnsw" + suffix, {"ef": ef}, faiss_run))

        log.info("%s: timing %d configurations x %d passes, interleaved", variant, len(jobs),
                 passes)
        blocks = [[i for i, q in enumerate(fq) if q.bucket == b.name] for b in buckets]
        evict = _Evictor(int(wl.get("evict_mb", 0)))
        timed = _timed_interleaved(jobs, len(fq), passes, [b for b in blocks if b], evict)
        for job, (nanos, found) in zip(jobs, timed):
            rows += _rows_for(job.system, job.params, fq, gt, k, nanos, found, job.plans,
                              job.stages)
    del hnsw_index, findex

    bucket_info = []
    for b in buckets:
        sel = [q for q in fq if q.bucket == b.name]
        counts = np.array([q.count for q in sel]) if sel else np.zeros(1)
        bucket_info.append({
            "bucket": b.name,
            "queries": len(sel),
            "allowed_median": float(np.median(counts)),
            "allowed_min": int(counts.min()),
            "allowed_max": int(counts.max()),
            "selectivity_median": float(np.median(counts) / n),
            "templates": dict(Counter(q.template for q in sel).most_common()),
        })
    return {
        "variant": variant,
        "thp_mode": hugepages.thp_mode(),
        "buckets": bucket_info,
        "builds": builds,
        "rows": [{"variant": variant, **r} for r in rows],
        "queries": [
            {"bucket": q.bucket, "template": q.template, "expr": q.expr,
             "query_row": q.query_row, "allowed": q.count}
            for q in fq
        ],
    }


def run(
    wl: dict[str, Any],
    *,
    cache_dir: Path = CACHE_DIR,
    results_dir: Path = RESULTS_DIR,
    name: str = "filtered",
    variants: Sequence[str] | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Run the workload; write `<name>.json/.md/.png` under results_dir; return the document."""
    env = environment()
    with Timer() as total:
        per_variant = [
            _run_variant(wl, v, cache_dir) for v in (variants or wl["dataset"]["variants"])
        ]
    doc = {
        "benchmark": "filtered",
        "command": command_line(),
        "workload": wl,
        "environment": env,
        "runtime_seconds": total.seconds,
        "timing": "interleaved by bucket",
        "variants": per_variant,
        "rows": [r for v in per_variant for r in v["rows"]],
    }
    md = render_markdown(doc)
    if plot:
        png = results_dir / f"{name}.png"
        results_dir.mkdir(parents=True, exist_ok=True)
        plot_recall_qps(doc, png)
        md += f"\n\n![recall vs QPS per bucket]({png.name})\n"
    write_results(name, doc, md, results_dir)
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--workload", type=Path, default=WORKLOAD)
    ap.add_argument("--quick", action="store_true", help="10k vectors, 20 queries per bucket")
    ap.add_argument("--variant", action="append", choices=["correlated", "uncorrelated"],
                    help="run only this variant (repeatable); default: the workload's list")
    ap.add_argument("--name", default=None, help="result file stem (default filtered[_quick])")
    ap.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--render-only", type=Path, metavar="JSON",
                    help="redraw the .md and .png of an existing result JSON and exit")
    args = ap.parse_args(argv)
    if args.render_only is not None:
        doc = json.loads(args.render_only.read_text())
        png = args.render_only.with_suffix(".png")
        plot_recall_qps(doc, png)
        md = render_markdown(doc) + f"\n\n![recall vs QPS per bucket]({png.name})\n"
        write_results(args.render_only.stem, doc, md, args.render_only.parent)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_server_logs()
    wl = load_workload(args.workload, quick=args.quick)
    name = args.name or ("filtered_quick" if args.quick else "filtered")
    doc = run(copy.deepcopy(wl), cache_dir=args.cache_dir, results_dir=args.results_dir,
              name=name, variants=args.variant)
    log.info("done in %.1f min -> %s", doc["runtime_seconds"] / 60, args.results_dir / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
