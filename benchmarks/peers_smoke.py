"""Side-by-side sanity run of the peer adapters: every peer, end to end, with filters.

Small on purpose (default 10k × 64): it shows that each adapter in `benchmarks/adapters/`
builds, translates every kind of filter and answers with sensible recall, and gives a first
QPS figure — not the FANNS suite's protocol (no tuner, one `ef`). Workloads, on seeded
clustered vectors with attributes drawn independently of the vectors:

    none        unfiltered
    eq50        keyword equality                      (~50 % of rows pass)
    not50       not (float range)                     (~50 %)
    contains1   keyword_list contains a rare tag      (~1 %)
    and1        bool equality and int range           (~1 %)

Each system runs the query set single-threaded in a loop, `--repeats` times; QPS is the median
over repeats, recall@10 against exact numpy ground truth over the rows passing the filter
(`filterspec.mask`). The peers' own worker threads are not restricted (LanceDB's runtime,
FAISS inside milvus-lite), as a user would run them.

    python -m benchmarks.peers_smoke [--n 10000] [--dim 64] [--queries 200]
        [--systems chroma,lancedb,lancedb_postfilter,milvus_lite,pgvector,qdrant_local]
        [--ef 64]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sievedb.synthetic import clustered_vectors

from benchmarks.adapters.base import System, Unavailable
from benchmarks.adapters.peer_common import peer_version
from benchmarks.filterspec import AttributeTable, Column, Filter, mask
from benchmarks.harness import (
    command_line,
    environment,
    latency_summary,
    markdown_table,
    recall_at_k,
    time_each,
    write_results,
)

WORKLOADS: dict[str, Filter | None] = {
    "none": None,
    "eq50": ["eq", "half", "a"],
    "not50": ["not", ["range", "score", 0.0, 0.5]],
    "contains1": ["contains", "tags", "rare"],
    "and1": ["and", ["eq", "flag", True], ["range", "bucket", 0, 1]],
}
SYSTEMS = ("chroma", "lancedb", "lancedb_postfilter", "milvus_lite", "pgvector",
           "qdrant_local")


def make_table(n: int, seed: int) -> AttributeTable:
    """Attributes of every kind, independent of the vectors, with known selectivities."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, 4, n)
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    tags = rng.integers(0, 10, int(indptr[-1]))
    rare = rng.random(n) < 0.01
    tags[indptr[:-1][rare]] = 10  # first tag of ~1 % of rows becomes "rare"
    return AttributeTable({
        "half": Column("keyword", rng.integers(0, 2, n), vocab=("a", "b")),
        "tags": Column("keyword_list", tags, indptr=indptr,
                       vocab=(*(f"t{i}" for i in range(10)), "rare")),
        "bucket": Column("int", rng.integers(0, 100, n).astype(np.int64)),
        "score": Column("float", rng.random(n)),
        "flag": Column("bool", rng.random(n) < 0.5),
        "day": Column("datetime", 1_500_000_000 + 86_400 * rng.integers(0, 3650, n)),
    })


def make_system(name: str, workdir: Path, ef: int) -> tuple[System, dict[str, Any]]:
    """The adapter and the query parameters this run uses for it."""
    if name == "chroma":
        from benchmarks.adapters.chroma import Chroma
        return Chroma(workdir, ef=ef), {"ef": ef}
    if name in ("lancedb", "lancedb_postfilter"):
        from benchmarks.adapters.lancedb import LanceDB
        return LanceDB(workdir), {"ef": ef, "prefilter": name == "lancedb"}
    if name == "milvus_lite":
        from benchmarks.adapters.milvus_lite import MilvusLite
        return MilvusLite(workdir), {"ef": ef}
    if name == "pgvector":
        from benchmarks.adapters.pgvector import PgVector
        return PgVector(workdir), {"ef": ef}
    if name == "qdrant_local":
        from benchmarks.adapters.qdrant_local import QdrantLocal
        return QdrantLocal(workdir), {}
    raise ValueError(f"unknown system {name!r}; choose from {SYSTEMS}")


def exact_truth(base: np.ndarray, queries: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    ids = np.flatnonzero(allowed)
    scores = queries @ base[ids].T
    kk = min(k, ids.size)
    out = np.full((queries.shape[0], k), -1, np.int64)
    if kk:
        top = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
        out[:, :kk] = ids[top]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    vecs, _ = clustered_vectors(args.n + args.queries, args.dim, seed=args.seed)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    base, queries = vecs[: args.n], vecs[args.n:]
    table = make_table(args.n, args.seed + 1)
    truths = {}
    selectivity = {}
    for wl, flt in WORKLOADS.items():
        allowed = np.ones(args.n, bool) if flt is None else mask(flt, table)
        selectivity[wl] = float(allowed.mean())
        truths[wl] = exact_truth(base, queries, allowed, args.k)
    rows: list[dict[str, Any]] = []
    unavailable: dict[str, str] = {}
    builds: dict[str, Any] = {}
    shared: dict[str, tuple[System, Any]] = {}
    for name in args.systems.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"peers-smoke-{name}-", dir=args.workdir))
        try:
            system, params = make_system(name, work, args.ef)
        except Unavailable as exc:
            unavailable[name] = str(exc)
            continue
        key = "lancedb" if name.startswith("lancedb") else name
        if key in shared:  # lancedb_postfilter queries the lancedb build
            system.close()
            system, info = shared[key]
        else:
            print(f"[{name}] building {args.n} x {args.dim} ...", flush=True)
            info = system.build(base, table)
            shared[key] = (system, info)
        builds[name] = {"seconds": info.seconds, "disk_bytes": info.disk_bytes,
                        "in_memory": info.in_memory, **info.extra}
        system.set_query_params(**params)
        nq = min(args.queries, args.slow_queries) if name == "qdrant_local" else args.queries
        for wl, flt in WORKLOADS.items():
            if not system.supports(flt):
                rows.append({"system": name, "workload": wl, "supported": False})
                continue
            def one(i: int, s: System = system, f: Filter | None = flt) -> np.ndarray:
                return s.search(queries[i], f, args.k)

            runs = []
            for _ in range(args.repeats):
                nanos, found = time_each(one, nq)
                runs.append((latency_summary(nanos), found))
            runs.sort(key=lambda r: r[0]["qps"])
            summary, found = runs[len(runs) // 2]
            rows.append({
                "system": name, "workload": wl, "selectivity": selectivity[wl],
                "params": params, "queries": nq, "supported": True,
                f"recall@{args.k}": recall_at_k(found, truths[wl][:nq], args.k),
                "qps": summary["qps"], "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"],
                "qps_all_repeats": [r[0]["qps"] for r in runs],
                # answers with fewer ids than exist (post-filtering, a disconnected graph)
                "short_answers": int(sum(len(f) < int((t >= 0).sum())
                                         for f, t in zip(found, truths[wl][:nq], strict=True))),
            })
            print(f"[{name}] {wl}: recall@{args.k}={rows[-1][f'recall@{args.k}']:.3f} "
                  f"qps={summary['qps']:.0f}", flush=True)
    for system, _ in shared.values():
        system.close()
    if args.cleanup:
        shutil.rmtree(args.workdir, ignore_errors=True)
    env = environment()
    env["peers"] = {dist: peer_version(dist) for dist in
                    ("chromadb", "lancedb", "pylance", "pymilvus", "milvus-lite",
                     "pgserver", "psycopg", "qdrant-client")}
    return {
        "command": command_line(),
        "environment": env,
        "parameters": {"n": args.n, "dim": args.dim, "queries": args.queries,
                       "slow_queries": args.slow_queries, "k": args.k, "ef": args.ef,
                       "repeats": args.repeats, "seed": args.seed,
                       "workloads": WORKLOADS, "selectivity": selectivity},
        "builds": builds,
        "unavailable": unavailable,
        "rows": rows,
    }


def to_markdown(doc: dict[str, Any]) -> str:
    k = doc["parameters"]["k"]
    out = [
        ("Peer adapters end to end (sanity run, one query setting per system; not the tuned "
         "suite). qdrant_local is qdrant-client local mode (not the Qdrant server): exact "
         "scan, Python filter loop. milvus_lite is milvus-lite 3.x (pure-Python Milvus API, "
         "FAISS HNSW per segment), not Milvus standalone. pgvector is pgvector 0.6.2 in "
         "PostgreSQL 16.2 (pgserver). lancedb_postfilter is the lancedb build queried with "
         "prefilter=False."),
        "",
        "Selectivity: " + ", ".join(f"{w} {s:.3f}"
                                    for w, s in doc["parameters"]["selectivity"].items()),
        "",
        "Peer versions: " + ", ".join(f"{d} {v}" for d, v in
                                      doc["environment"]["peers"].items() if v),
        "",
        markdown_table(
            [{"system": s, "build_s": b["seconds"], "disk_MB": b["disk_bytes"] / 1e6,
              "index": b.get("index", "")} for s, b in doc["builds"].items()],
            ["system", "index", "build_s", "disk_MB"],
        ),
        "",
        markdown_table(
            [r for r in doc["rows"] if r.get("supported")],
            ["workload", "system", "selectivity", f"recall@{k}", "qps", "p50_ms", "p99_ms",
             "queries", "short_answers"],
        ),
    ]
    if doc["unavailable"]:
        out += ["", "Unavailable: " + "; ".join(f"{s}: {r}" for s, r in
                                                 doc["unavailable"].items())]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--slow-queries", type=int, default=50,
                    help="query count for qdrant_local (a Python loop over every point)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--name", default="peers_smoke")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    args.cleanup = args.workdir is None
    if args.workdir is None:
        args.workdir = Path(tempfile.mkdtemp(prefix="peers-smoke-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    doc = run(args)
    md = to_markdown(doc)
    print(md)
    if not args.no_write:
        paths = write_results(args.name, doc, md)
        print("wrote", *paths)


if __name__ == "__main__":
    main()
