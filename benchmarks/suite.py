"""The FANNS benchmark suite: filtered k-NN by workload × selectivity bucket, systems side by side.

    python -m benchmarks.suite benchmarks/workloads/fanns_synthetic_100k.yaml
    sievedb bench suite benchmarks/workloads/fanns_tiny.yaml --name smoke
    python -m benchmarks.suite --render-only benchmarks/results/fanns_synthetic_100k.json

A workload YAML holds the dataset spec (`kind` + `params`), the index parameters, k values,
selectivity buckets, the filter workloads (EM, R, EMIS, combinations; see `fanns_queries`),
the protocol (tuning subset, runs, recall target, budgets, threads) and the systems with
their sweeps. The run:

1. opens the dataset (`suite_data`), builds each workload's query set bucketed by measured
   selectivity, and its exact ground truth (cached);
2. starts every system in its OWN child process (forked, so the dataset is shared
   copy-on-write), one after another: build or reopen the cached index. Then per k ×
   workload × bucket (a slice) every system runs the protocol of `suite_protocol` (tune on a
   subset, measure on the held-out rest, ≥ 3 runs, median; batch and multi-thread QPS), one
   system at a time in an order rotated from slice to slice, so a slow spell of a shared
   machine falls on all of them alike. The child's peak RSS (VmHWM) minus its RSS when it
   started (the shared dataset) is the system's memory; a system that raises `Unavailable`
   is reported with its reason;
3. writes `<name>.json` (every row keyed by its parameters, plus the environment and the
   exact command), `<name>.md` (tables per workload and bucket, the summary) and one
   recall-vs-QPS PNG per workload under the results folder (`suite_report`).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import logging
import multiprocessing as mp
import os
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.adapters.base import Unavailable
from benchmarks.fanns_queries import Bucket, Query, bucket_of, build_query_set
from benchmarks.filterspec import mask
from benchmarks.harness import (
    CACHE_DIR,
    RESULTS_DIR,
    Timer,
    command_line,
    environment,
    quiet_server_logs,
)
from benchmarks.suite_data import Loaded, ground_truth, open_dataset
from benchmarks.suite_protocol import QuerySlice, expand_sweep, run_slice

__all__ = ["ADAPTERS", "load_workload", "main", "run"]

log = logging.getLogger("benchmarks.suite")

ADAPTERS = {
    "sievedb": "benchmarks.adapters.sievedb:SievedbEngine",
    "sievedb_grpc": "benchmarks.adapters.sievedb:SievedbGrpc",
    "numpy_exact": "benchmarks.adapters.baselines:NumpyExact",
    "hnswlib_filter": "benchmarks.adapters.baselines:HnswlibFilter",
    "hnswlib_postfilter": "benchmarks.adapters.baselines:HnswlibPostfilter",
    "faiss_hnsw": "benchmarks.adapters.baselines:FaissHnsw",
}
# Keys of a system's YAML block that are not query-parameter sweeps.
SYSTEM_KEYS = ("adapter", "build")
PROTOCOL_DEFAULTS = {
    "tune_queries": 30, "runs": 3, "target_recall": 0.95, "stop_recall": 0.995, "warmup": 3,
    "max_query_ms": 1e9, "point_budget_s": 1e9, "threads": [], "batch": True,
}


def _set(doc: dict[str, Any], dotted: str, value: str) -> None:
    *path, last = dotted.split(".")
    for part in path:
        doc = doc.setdefault(part, {})
    doc[last] = yaml.safe_load(value)


def load_workload(path: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The YAML document with `key.sub=value` overrides applied (values parsed as YAML).

    `extends: other.yaml` starts from another workload (path relative to this file) and
    replaces its top-level keys with this file's (e.g. the same queries, other systems).
    """
    wl = yaml.safe_load(Path(path).read_text())
    if "extends" in wl:  # another workload file, relative to this one; top-level keys replace
        parent = load_workload(Path(path).parent / wl.pop("extends"))
        parent.pop("name", None)
        wl = {**parent, **wl}
    for item in overrides or []:
        key, _, value = item.partition("=")
        _set(wl, key, value)
    wl["protocol"] = {**PROTOCOL_DEFAULTS, **wl.get("protocol", {})}
    wl.setdefault("name", Path(path).stem)
    return wl


def _adapter(name: str, cfg: dict[str, Any]) -> type:
    target = cfg.get("adapter") or ADAPTERS.get(name)
    if target is None:
        raise Unavailable(f"no adapter registered for {name!r} (give `adapter: module:Class`)")
    module, _, cls = target.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
    except ImportError as exc:
        raise Unavailable(f"cannot import {target}: {exc}") from exc


def _workloads_for_k(wl: dict[str, Any], k: int) -> list[str]:
    only = (wl.get("k_workloads") or {}).get(k)
    return [w for w in wl["workloads"] if only is None or w in only]


def _build_slices(
    wl: dict[str, Any], data: Loaded, cache_dir: Path
) -> tuple[dict[str, list[QuerySlice]], list[dict[str, Any]]]:
    buckets = [Bucket(**b) for b in wl["buckets"]]
    kmax = max(int(k) for k in wl["ks"])
    seed = int(wl.get("seed", 0))
    slices: dict[str, list[QuerySlice]] = {}
    info: list[dict[str, Any]] = []
    n = len(data.table)
    for wname, wdef in wl["workloads"].items():
        with Timer() as t_q:
            if wdef["family"] == "dataset":
                qset = _shipped_queries(data, wdef, buckets, int(wl["queries_per_bucket"]), seed)
            else:
                qset = build_query_set(data.table, data.queries.shape[0], wdef, buckets,
                                       int(wl["queries_per_bucket"]), seed=seed)
        with Timer() as t_gt:
            gt = ground_truth(data, [q.qrow for q in qset], [q.filter for q in qset], kmax,
                              cache_dir=cache_dir, key=wname)
        log.info("%s: %d queries (%.1f s), ground truth top-%d (%.1f s)", wname, len(qset),
                 t_q.seconds, kmax, t_gt.seconds)
        slices[wname] = []
        for b in buckets:
            idx = [i for i, q in enumerate(qset) if q.bucket == b.name]
            counts = np.array([qset[i].count for i in idx]) if idx else np.zeros(0)
            info.append({
                "workload": wname, "family": wdef["family"], "bucket": b.name,
                "queries": len(idx),
                "tune_queries": min(int(wl["protocol"]["tune_queries"]), max(0, len(idx) - 1)),
                "distinct_filters": len({json.dumps(qset[i].filter) for i in idx}),
                "allowed_median": float(np.median(counts)) if idx else None,
                "allowed_min": int(counts.min()) if idx else None,
                "allowed_max": int(counts.max()) if idx else None,
                "selectivity_median": float(np.median(counts) / n) if idx else None,
                "example": qset[idx[0]].filter if idx else None,
            })
            if len(idx) < 2:
                continue
            slices[wname].append(QuerySlice(
                wname, b.name, np.ascontiguousarray(data.queries[[qset[i].qrow for i in idx]]),
                [qset[i].filter for i in idx], gt[idx], [qset[i].count for i in idx],
            ))
    return slices, info


def _shipped_queries(
    data: Loaded, wdef: dict[str, Any], buckets: list[Bucket], per_bucket: int, seed: int
) -> list[Query]:
    """`family: dataset`: the query set the dataset ships (`workload: em`), bucketed by the
    measured selectivity of each query's own filter; up to `per_bucket` per bucket, seeded."""
    shipped = (data.workloads or {}).get(wdef["workload"])
    if shipped is None:
        raise ValueError(f"dataset {data.name} ships no workload {wdef['workload']!r}; it has "
                         f"{sorted(data.workloads or {})}")
    n = len(data.table)
    rng = np.random.default_rng([seed, 99])
    chosen: dict[str, list[Query]] = {b.name: [] for b in buckets}
    for i in rng.permutation(len(shipped)):
        flt = shipped[int(i)]
        count = n if flt is None else int(np.count_nonzero(mask(flt, data.table)))
        b = bucket_of(count, n, buckets)
        if b is not None and len(chosen[b]) < per_bucket:
            chosen[b].append(Query(b, flt, count, int(i)))  # type: ignore[arg-type]
        if all(len(v) >= per_bucket for v in chosen.values()):
            break
    return [q for b in buckets for q in chosen[b.name]]


def _rss(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _Session:
    """One system, built, answering slices: in this process, or inside `_Remote`'s child."""

    def __init__(
        self, name: str, cfg: dict[str, Any], wl: dict[str, Any], data: Loaded,
        slices: dict[str, list[QuerySlice]], cache_dir: Path,
    ) -> None:
        self.name, self.wl, self.slices = name, wl, slices
        self.system: Any = None
        self.failed: dict[str, Any] | None = None  # set when unavailable or broken
        rss_start = _rss("VmRSS")
        # The machine may be shared: the load average before and after says how contended.
        self.summary: dict[str, Any] = {"system": name, "rss_start_bytes": rss_start,
                                        "loadavg_start": os.getloadavg()[0]}
        try:
            cls = _adapter(name, cfg)
            build_params = {**wl.get("index", {}), **(cfg.get("build") or {}),
                            "cache_dir": cache_dir}
            system = cls(cache_dir / "work" / name, **build_params)
        except Unavailable as exc:
            self.summary["unavailable"] = str(exc)
            self.failed = self.summary
            return
        self.sweep = expand_sweep({k: v for k, v in cfg.items() if k not in SYSTEM_KEYS})
        try:
            with Timer() as t_build:
                info = system.build(data.base, data.table)
            self.summary["build"] = {**asdict(info), "wall_seconds": t_build.seconds}
            self.summary["rss_after_build_bytes"] = _rss("VmRSS")
            check = getattr(system, "check_counts", None)
            if check is not None:  # both sides must mean the same thing by every filter
                for qslices in slices.values():
                    for qs in qslices:
                        check(qs.filters, qs.counts)
        except Unavailable as exc:
            self.summary["unavailable"] = str(exc)
            self.failed = self.summary
            system.close()
            return
        except BaseException:
            system.close()
            raise
        self.system = system

    def run(self, k: int, workload: str, index: int) -> list[dict[str, Any]]:
        """The protocol's rows for one slice (k × workload × bucket)."""
        qs = self.slices[workload][index]
        if not all(self.system.supports(f) for f in qs.filters):
            return [{"workload": qs.workload, "bucket": qs.bucket, "k": k,
                     "system": self.name, "phase": "unsupported"}]
        return run_slice(self.system, self.sweep, qs, k, self.wl["protocol"])

    def finish(self) -> dict[str, Any]:
        """Close the system; the summary (build, memory, load, final stats)."""
        if self.system is not None:
            try:
                stats = getattr(self.system, "stats", None)
                if stats:
                    self.summary["final_stats"] = stats()
            finally:
                self.system.close()
                self.system = None
        self.summary["peak_rss_bytes"] = _rss("VmHWM")
        self.summary["loadavg_end"] = os.getloadavg()[0]
        return self.summary


def _serve(conn: Any, *args: Any) -> None:
    """The child's loop: build, report, answer (k, workload, index) until None, finish."""
    session = None
    try:
        session = _Session(*args)
        conn.send(("ready", session.failed))
        if session.failed is not None:
            return
        while (msg := conn.recv()) is not None:
            conn.send(("rows", session.run(*msg)))
        conn.send(("done", session.finish()))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        conn.send(("error", {"system": args[0], "error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc()}))
    finally:
        conn.close()


class _Remote:
    """A `_Session` in its own forked child (the dataset shared copy-on-write), so its peak
    RSS is its own; driven over a pipe, one slice at a time."""

    def __init__(self, *args: Any) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, *args), name=f"suite-{args[0]}")
        self.proc.start()
        child.close()
        self.name = args[0]
        _, self.failed = self._recv()  # waits for the build: builds never overlap

    def _recv(self) -> tuple[str, Any]:
        try:
            return self.conn.recv()  # type: ignore[no-any-return]
        except EOFError:
            return "error", {"system": self.name,
                             "error": "the system's process died without a result"}

    def run(self, k: int, workload: str, index: int) -> list[dict[str, Any]]:
        self.conn.send((k, workload, index))
        kind, payload = self._recv()
        if kind != "rows":
            self.failed = payload
            raise RuntimeError(payload.get("error", "failed"))
        return payload  # type: ignore[no-any-return]

    def finish(self) -> dict[str, Any]:
        if self.failed is None:
            self.conn.send(None)
            kind, payload = self._recv()
            result = payload
        else:
            result = self.failed
        self.proc.join()
        result["exit_code"] = self.proc.exitcode
        return result  # type: ignore[no-any-return]


def _run_systems(
    wl: dict[str, Any], data: Loaded, slices: dict[str, list[QuerySlice]], cache_dir: Path,
    only: list[str] | None, isolate: bool, progress: bool,
) -> list[dict[str, Any]]:
    """Run every system on every slice; one result per system (summary + rows).

    Interleaved (the default, workload key `interleave`): build every system, one after
    another, then run the slices one by one, each on every system in an order rotated from
    slice to slice, so a slow spell of a shared machine lands on all systems alike (one system
    after another, the load average differed by 2× between their turns). Every system's index
    is then in memory at once; `interleave: false` runs them one after another instead, for
    data sets too big for that.
    """
    todo = [(int(k), w, i) for k in wl["ks"] for w in _workloads_for_k(wl, int(k))
            for i in range(len(slices.get(w, [])))]
    names = [s for s in wl["systems"] if not only or s in only]
    results: dict[str, dict[str, Any]] = {}

    def start(sname: str) -> Any:
        log.info("system %s: building", sname)
        args = (sname, wl["systems"][sname] or {}, wl, data, slices, cache_dir)
        try:
            handle = _Remote(*args) if isolate else _Session(*args)
        except Exception as exc:  # noqa: BLE001 - in-process build failure, reported
            results[sname] = {"system": sname, "error": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc()}
            return None
        if handle.failed is not None:
            results[sname] = handle.finish() if isolate else handle.failed
            return None
        return handle

    if wl.get("interleave", True):
        groups = [[h for h in map(start, names) if h is not None]]
    else:
        groups = [[name] for name in names]  # started when their turn comes
    for group in groups:
        handles = [start(h) if isinstance(h, str) else h for h in group]
        _drive([h for h in handles if h is not None], todo, results, isolate, progress)
    for res in results.values():
        if "unavailable" in res:
            log.warning("%s unavailable: %s", res["system"], res["unavailable"])
    return [results[s] for s in names if s in results]


def _drive(
    handles: list[Any], todo: list[tuple[int, str, int]], results: dict[str, dict[str, Any]],
    isolate: bool, progress: bool,
) -> None:
    """Run `todo`'s slices on `handles` (rotating their order per slice), then finish them."""
    from tqdm import tqdm

    if not handles:
        return
    rows: dict[str, list[dict[str, Any]]] = {h.name: [] for h in handles}
    live = list(handles)
    desc = "slices" if len(handles) > 1 else f"{handles[0].name:18s}"
    for n, (k, w, i) in enumerate(tqdm(todo, desc=desc, unit="slice", disable=not progress,
                                       file=sys.stderr, dynamic_ncols=True)):
        turn = n % max(len(live), 1)
        for handle in live[turn:] + live[:turn]:
            try:
                rows[handle.name] += handle.run(k, w, i)
            except Exception as exc:  # noqa: BLE001 - the system is reported as failed
                if handle.failed is None:  # in this process: a child reports its own
                    handle.failed = {"system": handle.name,
                                     "error": f"{type(exc).__name__}: {exc}",
                                     "traceback": traceback.format_exc()}
        live = [h for h in live if h.failed is None]
    for handle in handles:
        if isolate or handle.failed is None:
            res = handle.finish()
        else:
            handle.finish()
            res = handle.failed
        if "error" in res:
            log.error("%s failed: %s\n%s", handle.name, res["error"], res.get("traceback", ""))
        results[handle.name] = {**res, "rows": rows[handle.name]}


def run(
    wl: dict[str, Any], *, cache_dir: Path = CACHE_DIR, results_dir: Path = RESULTS_DIR,
    name: str | None = None, systems: list[str] | None = None, isolate: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Run a loaded workload; write `<name>.json/.md` and PNGs; return the document."""
    from benchmarks import suite_report

    name = name or wl["name"]
    env = environment()
    for target in ADAPTERS.values():  # import now: a long run must not pick up later edits
        try:
            importlib.import_module(target.partition(":")[0])
        except ImportError:
            pass
    with Timer() as total:
        with Timer() as t_data:
            data = open_dataset(wl["dataset"], cache_dir)
        log.info("dataset %s: %d × %d, %d query vectors (%.1f s)", data.name,
                 *data.base.shape, data.queries.shape[0], t_data.seconds)
        slices, bucket_info = _build_slices(wl, data, cache_dir)
        results = _run_systems(wl, data, slices, cache_dir, systems, isolate, progress)
    doc = {
        "benchmark": "fanns_suite",
        "command": command_line(),
        "workload": wl,
        "environment": env,
        "dataset": {**data.info, "n": int(data.base.shape[0]), "dim": int(data.base.shape[1]),
                    "query_vectors": int(data.queries.shape[0])},
        "runtime_seconds": total.seconds,
        "isolation": "process (fork)" if isolate else "none (one process)",
        "timing": ("interleaved by slice" if wl.get("interleave", True)
                   else "one system after another"),
        "buckets": bucket_info,
        "systems": [{k: v for k, v in r.items() if k != "rows"} for r in results],
        "rows": [r for res in results for r in res.get("rows", [])],
    }
    suite_report.write(doc, name, results_dir)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("workload", type=Path, nargs="?", help="workload YAML")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a workload key (dotted path, YAML value), repeatable")
    ap.add_argument("--system", action="append", help="run only this system (repeatable)")
    ap.add_argument("--name", help="result file stem (default: the workload's name)")
    ap.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-isolate", action="store_true",
                    help="run every system in this process (peak RSS is then cumulative)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--render-only", type=Path, nargs="+", metavar="JSON",
                    help="re-render the Markdown and PNGs of an existing result JSON and exit; "
                    "several JSONs of the same workload are merged into one report (--name)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_server_logs()
    if args.render_only is not None:
        from benchmarks import suite_report

        docs = [json.loads(p.read_text()) for p in args.render_only]
        doc = suite_report.merge(docs) if len(docs) > 1 else docs[0]
        first = args.render_only[0]
        suite_report.write(doc, args.name or first.stem, first.parent)
        return 0
    if args.workload is None:
        ap.error("a workload YAML is required (or --render-only)")
    os.environ.setdefault("TQDM_MININTERVAL", "2")
    wl = load_workload(args.workload, args.set)
    doc = run(copy.deepcopy(wl), cache_dir=args.cache_dir, results_dir=args.results_dir,
              name=args.name, systems=args.system, isolate=not args.no_isolate,
              progress=not args.no_progress)
    log.info("done in %.1f min -> %s", doc["runtime_seconds"] / 60,
             args.results_dir / (args.name or wl["name"]))
    failed = [s["system"] for s in doc["systems"] if "error" in s]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
