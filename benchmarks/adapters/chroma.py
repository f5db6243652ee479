"""Chroma (chromadb, embedded `PersistentClient`) behind the suite's `System` interface.

What a user gets from `pip install chromadb`: a local persistent client (Rust core, SQLite
metadata store, hnswlib-fork HNSW segment) in this process, no server. Chroma filters by
running the `where` clause against its metadata store first, materialising every matching id,
and handing that allow-list to HNSW — so its cost grows with the number of *matching* rows
(see the Peers section of benchmarks/README.md).

Attributes: keyword → str, int/datetime → int (epoch seconds), float → float, bool → bool,
keyword_list → Chroma's list-of-strings metadata (`$contains` / `$not_contains`). Chroma
rejects an empty list as a metadata value, so a row with an empty keyword_list simply has no
such key: `$contains` is then false and `$not_contains` true, the filterspec semantics for an
empty list, so nothing is emulated unfairly.

Index: `configuration={"hnsw": {"space": "ip", "max_neighbors": m, "ef_construction": ...}}`,
the same M=16 / efConstruction=200 as the hnswlib baselines; query-time `ef` is Chroma's
`ef_search`, changed between sweeps (not inside the timed query) with `collection.modify` and
a reopen of the client, because a loaded index keeps the ef it was loaded with.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmarks.adapters.base import BuildInfo, System, dir_bytes
from benchmarks.adapters.peer_common import (
    MARKER,
    Untranslatable,
    build_key,
    cast,
    peer_version,
    read_build_marker,
    require,
    write_build_marker,
)
from benchmarks.filterspec import AttributeTable, Filter

__all__ = ["Chroma", "to_chroma_where"]

Where = dict[str, Any]
_NEG = {"$eq": "$ne", "$in": "$nin", "$contains": "$not_contains"}


def _combine(op: str, parts: list[Where | bool]) -> Where | bool:
    """`$and`/`$or` of translated parts, folding constants (Chroma wants ≥ 2 operands)."""
    absorbing, neutral = (False, True) if op == "and" else (True, False)
    kept: list[Where] = []
    for p in parts:
        if p is absorbing:
            return absorbing
        if p is not neutral:
            assert isinstance(p, dict)
            kept.append(p)
    if not kept:
        return neutral
    if len(kept) == 1:
        return kept[0]
    return {f"${op}": kept}


def _translate(flt: Filter, schema: dict[str, str], neg: bool) -> Where | bool:
    op = flt[0]
    if op == "not":
        return _translate(flt[1], schema, not neg)
    if op in ("and", "or"):
        eff = op if not neg else ("or" if op == "and" else "and")  # De Morgan
        return _combine(eff, [_translate(sub, schema, neg) for sub in flt[1:]])
    field = flt[1]
    kind = schema[field]
    if op == "eq":
        return {field: {"$ne" if neg else "$eq": cast(flt[2], kind)}}
    if op == "in":
        values = [cast(v, kind) for v in flt[2]]
        if not values:  # `in []` is false; Chroma rejects an empty $in list
            return neg
        return {field: {"$nin" if neg else "$in": values}}
    if op == "contains":
        return {field: {"$not_contains" if neg else "$contains": str(flt[2])}}
    if op == "range":
        lo, hi = flt[2], flt[3]
        if not neg:
            parts: list[Where | bool] = []
            if lo is not None:
                parts.append({field: {"$gte": cast(lo, kind)}})
            if hi is not None:
                parts.append({field: {"$lte": cast(hi, kind)}})
            return _combine("and", parts)
        parts = []
        if lo is not None:
            parts.append({field: {"$lt": cast(lo, kind)}})
        if hi is not None:
            parts.append({field: {"$gt": cast(hi, kind)}})
        return _combine("or", parts)
    raise Untranslatable(f"unknown filter operator {op!r}")


def to_chroma_where(flt: Filter | None, schema: dict[str, str]) -> Where | None:
    """The filter as a Chroma `where` dict (None = no filter).

    Chroma's `where` has `$and $or $eq $ne $gt $gte $lt $lte $in $nin $contains
    $not_contains` and no `$not`, so negations are pushed to the leaves (exact here; see
    peer_common). A filter that is constantly false (`in []`, `not` of an open range) has no
    Chroma spelling and raises `Untranslatable`.
    """
    if flt is None:
        return None
    out = _translate(flt, schema, False)
    if out is True:
        return None
    if out is False:
        raise Untranslatable(f"{flt!r} is constantly false; Chroma's where cannot say that")
    return out


class Chroma(System):
    """chromadb `PersistentClient` (embedded), HNSW space=ip, `where` filters."""

    name = "chroma"
    param_names = ("ef",)
    thread_safe: ClassVar[bool] = True

    def __init__(self, workdir: Path, **build_params: Any) -> None:
        super().__init__(workdir, **build_params)
        self._chromadb = require("chromadb", "chromadb")
        self._schema: dict[str, str] = {}
        self._col: Any = None
        self._ef: int | None = None
        self._dim = 0

    def _connect(self, path: Path) -> None:
        self._client = self._chromadb.PersistentClient(
            path=str(path), settings=self._chromadb.Settings(anonymized_telemetry=False)
        )

    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        path = self.workdir / "chroma"
        self._schema = table.schema
        self._dim = int(base.shape[1])
        key = build_key(self.name, "chromadb", base, table, self.build_params)
        done = read_build_marker(self.workdir, key) if self.build_params.get("reuse", True) else None
        if done is not None:  # the same data and parameters were built here before: reopen
            self._connect(path)
            self._col = self._client.get_collection("bench")
            self._ef = int(self._col.configuration["hnsw"]["ef_search"])
            self._col.query(query_embeddings=base[:1], n_results=1, include=[])
            return BuildInfo(seconds=float(done["seconds"]), disk_bytes=dir_bytes(self.workdir),
                             cached=True, extra=done["extra"])
        (self.workdir / MARKER).unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        ef = int(self.build_params.get("ef", 64))
        t0 = time.perf_counter()
        self._connect(path)
        self._col = self._client.create_collection(
            "bench",
            # The default embedding function stays configured but is never called (we pass
            # embeddings): `embedding_function=None` breaks `modify` (ef_search) in 1.5.
            configuration={
                "hnsw": {
                    "space": "ip",
                    "max_neighbors": int(self.build_params.get("m", 16)),
                    "ef_construction": int(self.build_params.get("ef_construction", 200)),
                    "ef_search": ef,
                }
            },
        )
        self._ef = ef
        batch = int(self._client.get_max_batch_size())
        n = base.shape[0]
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            metas = [
                {key: v for key, v in row.items() if not (isinstance(v, list) and not v)}
                for row in table.rows(start, stop)
            ]
            self._col.add(
                ids=[str(i) for i in range(start, stop)],
                embeddings=np.ascontiguousarray(base[start:stop], dtype=np.float32),
                metadatas=metas,  # type: ignore[arg-type]
            )
        # One query so the HNSW segment is loaded before timing starts.
        self._col.query(query_embeddings=base[:1], n_results=1, include=[])
        seconds = time.perf_counter() - t0
        extra = {"version": peer_version("chromadb"), "index": "hnsw space=ip", "batch": batch}
        write_build_marker(self.workdir, key, seconds, extra)
        return BuildInfo(seconds=seconds, disk_bytes=dir_bytes(self.workdir), extra=extra)

    def supports(self, flt: Filter | None) -> bool:
        try:
            to_chroma_where(flt, self._schema) if self._schema else None
        except Untranslatable:
            return False
        return True

    def set_query_params(self, **params: Any) -> None:
        super().set_query_params(**params)
        ef = int(params.get("ef", 64))
        if self._col is not None and ef != self._ef:
            self._col.modify(configuration={"hnsw": {"ef_search": ef}})
            # chromadb 1.5 reads ef_search when it loads the HNSW segment: `modify` alone
            # leaves the loaded index searching with the old ef (checked: same recall at
            # ef 10 and 400). Reopening the client loads it with the new one. Untimed.
            self._client.clear_system_cache()
            self._connect(self.workdir / "chroma")
            self._col = self._client.get_collection("bench")
            self._ef = ef
            assert int(self._col.configuration["hnsw"]["ef_search"]) == ef
            self._col.query(query_embeddings=np.zeros((1, self._dim), np.float32),
                            n_results=1, include=[])

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        where = to_chroma_where(flt, self._schema)
        res = self._col.query(
            query_embeddings=q[None, :], n_results=k, where=where, include=[]
        )
        return np.fromiter((int(i) for i in res["ids"][0]), dtype=np.int64)

    def search_batch(
        self, qs: np.ndarray, flts: Sequence[Filter | None], k: int
    ) -> list[np.ndarray]:
        """Chroma's `query` takes many embeddings but one `where`: batch only equal filters."""
        if flts and all(f == flts[0] for f in flts):
            where = to_chroma_where(flts[0], self._schema)
            res = self._col.query(query_embeddings=qs, n_results=k, where=where, include=[])
            return [np.fromiter((int(i) for i in ids), dtype=np.int64) for ids in res["ids"]]
        return super().search_batch(qs, flts, k)

    def close(self) -> None:
        self._col = None
        client = getattr(self, "_client", None)
        if client is not None:
            with contextlib.suppress(Exception):  # best effort on shutdown
                client.clear_system_cache()
            self._client = None
