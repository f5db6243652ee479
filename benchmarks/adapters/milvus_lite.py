"""Milvus Lite (pymilvus `MilvusClient("x.db")`) behind the suite's `System` interface.

What a user gets from `pip install "pymilvus[milvus_lite]"` and the Milvus quick-start:
`MilvusClient("./bench.db")` starts milvus-lite for that file and talks to it over gRPC on
127.0.0.1. Be clear about what that is in the installed version (milvus-lite 3.x): a
pure-Python, in-process re-implementation of the Milvus API (a gRPC server thread, Parquet
segments of ≤ 100k rows, a Python/Arrow filter evaluator, FAISS `IndexHNSWFlat` per segment
with an `IDSelectorBatch` of the rows passing the filter). It is *not* Milvus standalone or
distributed (Knowhere, its 93 %-filtered brute-force switch, partition keys), which need Docker
or a cluster; numbers here say nothing about those.

Attributes: keyword → VARCHAR, keyword_list → ARRAY<VARCHAR> (`ARRAY_CONTAINS`), int/datetime
→ INT64 (epoch seconds), float → DOUBLE, bool → BOOL; with `scalar_indexes=True` (default)
an INVERTED index on each scalar field (the only scalar index type milvus-lite implements;
arrays get none). Vector index (`index_type`): `HNSW` (default, M=16 / efConstruction=200,
metric IP; query-time `ef`), `IVF_FLAT` (`nlist`, query-time `nprobe`) or `FLAT` (exact).
Query time includes the loopback gRPC round trip: that is how pymilvus users call it.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
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

__all__ = ["MilvusLite", "to_milvus_expr"]

_INDEX_TYPES = ("HNSW", "IVF_FLAT", "FLAT")
COLLECTION = "bench"


def _lit(value: Any, kind: str) -> str:
    v = cast(value, kind)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Untranslatable(f"non-finite bound {v!r}")
        return repr(v)
    return str(v)


def to_milvus_expr(flt: Filter | None, schema: dict[str, str]) -> str:
    """The filter as a Milvus boolean expression ("" = no filter).

    eq → `==`, in → `in [...]`, contains → `ARRAY_CONTAINS(col, v)`, range → `>=`/`<=`,
    and/or/not → Milvus's `and`/`or`/`not`. Every filterspec filter has a spelling.
    """
    if flt is None:
        return ""
    op = flt[0]
    if op in ("and", "or"):
        return "(" + f" {op} ".join(to_milvus_expr(f, schema) for f in flt[1:]) + ")"
    if op == "not":
        return f"(not {to_milvus_expr(flt[1], schema)})"
    field = flt[1]
    kind = schema[field]
    if op == "eq":
        return f"{field} == {_lit(flt[2], kind)}"
    if op == "in":
        return f"{field} in [{', '.join(_lit(v, kind) for v in flt[2])}]"
    if op == "contains":
        return f"ARRAY_CONTAINS({field}, {_lit(flt[2], 'keyword')})"
    if op == "range":
        lo, hi = flt[2], flt[3]
        parts = []
        if lo is not None:
            parts.append(f"{field} >= {_lit(lo, kind)}")
        if hi is not None:
            parts.append(f"{field} <= {_lit(hi, kind)}")
        if not parts:
            return f"({field} == {field})"  # always true; Milvus has no bare `true` filter
        return "(" + " and ".join(parts) + ")"
    raise Untranslatable(f"unknown filter operator {op!r}")


class MilvusLite(System):
    """milvus-lite 3.x through pymilvus `MilvusClient`: FAISS HNSW per segment, expr filters."""

    name = "milvus_lite"
    param_names = ("ef", "nprobe")
    thread_safe: ClassVar[bool] = True

    def __init__(self, workdir: Path, **build_params: Any) -> None:
        super().__init__(workdir, **build_params)
        self._pymilvus = require("pymilvus", "pymilvus[milvus_lite]")
        require("milvus_lite", "milvus-lite")
        self.index_type = str(build_params.get("index_type", "HNSW")).upper()
        if self.index_type not in _INDEX_TYPES:
            raise ValueError(f"milvus_lite index_type must be one of {_INDEX_TYPES}")
        self._schema: dict[str, str] = {}
        self._client: Any = None

    def _collection_schema(self, dim: int, table: AttributeTable) -> Any:
        from pymilvus import DataType

        s = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        for name, col in table.columns.items():
            if col.kind in ("keyword", "keyword_list"):
                longest = max((len(v.encode()) for v in col.vocab or ()), default=1)
                max_len = max(1, longest)
                if col.kind == "keyword":
                    s.add_field(name, DataType.VARCHAR, max_length=max_len)
                else:
                    assert col.indptr is not None
                    cap = max(1, int(np.diff(col.indptr).max(initial=1)))
                    s.add_field(name, DataType.ARRAY, element_type=DataType.VARCHAR,
                                max_capacity=cap, max_length=max_len)
            elif col.kind == "float":
                s.add_field(name, DataType.DOUBLE)
            elif col.kind == "bool":
                s.add_field(name, DataType.BOOL)
            else:
                s.add_field(name, DataType.INT64)
        return s

    def _index_params(self, n: int) -> Any:
        ip = self._client.prepare_index_params()
        if self.index_type == "HNSW":
            params = {"M": int(self.build_params.get("m", 16)),
                      "efConstruction": int(self.build_params.get("ef_construction", 200))}
        elif self.index_type == "IVF_FLAT":
            params = {"nlist": int(self.build_params.get("nlist", max(1, int(math.sqrt(n)))))}
        else:
            params = {}
        ip.add_index("vector", index_type=self.index_type, metric_type="IP", params=params)
        if self.build_params.get("scalar_indexes", True):
            for name, kind in self._schema.items():
                if kind != "keyword_list":
                    ip.add_index(name, index_type="INVERTED")
        return ip

    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        path = self.workdir / "milvus"
        self._schema = table.schema
        self._uri = str(path / "bench.db")
        key = build_key(self.name, "milvus-lite", base, table,
                        {**self.build_params, "index_type": self.index_type})
        done = read_build_marker(self.workdir, key) if self.build_params.get("reuse", True) else None
        if done is not None:  # the same data and parameters were built here before: reopen
            self._client = self._pymilvus.MilvusClient(self._uri)
            self._client.load_collection(COLLECTION)
            self.search(base[0], None, 1)
            return BuildInfo(seconds=float(done["seconds"]), disk_bytes=dir_bytes(self.workdir),
                             cached=True, extra=done["extra"])
        (self.workdir / MARKER).unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        n, dim = base.shape
        t0 = time.perf_counter()
        self._client = self._pymilvus.MilvusClient(self._uri)
        # Milvus's documented order: create, insert, flush, then index and load. (Creating the
        # collection with its index params would make it "loaded" at once, and milvus-lite
        # would then build each flushed segment's index on a background thread — searches
        # brute-force the segment until it is done, and a load() racing that thread can read
        # a half-written index file.) Indexing after the flush builds every index in load().
        self._client.create_collection(COLLECTION, schema=self._collection_schema(dim, table))
        batch = int(self.build_params.get("batch_rows", 5_000))
        for lo in range(0, n, batch):
            hi = min(n, lo + batch)
            vecs = np.ascontiguousarray(base[lo:hi], dtype=np.float32)
            rows = []
            for j, attrs in enumerate(table.rows(lo, hi)):
                attrs["id"] = lo + j
                attrs["vector"] = vecs[j]
                rows.append(attrs)
            self._client.insert(COLLECTION, rows)
        self._client.flush(COLLECTION)
        self._client.create_index(COLLECTION, self._index_params(n))
        self._client.load_collection(COLLECTION)  # builds every segment's index, synchronously
        self.search(base[0], None, 1)  # indexes built and loaded before timing starts
        seconds = time.perf_counter() - t0
        extra = {"version": peer_version("milvus-lite"), "pymilvus": peer_version("pymilvus"),
                 "index": self.index_type}
        write_build_marker(self.workdir, key, seconds, extra)
        return BuildInfo(seconds=seconds, disk_bytes=dir_bytes(self.workdir), extra=extra)

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        p = self.query_params
        if self.index_type == "HNSW":
            params: dict[str, Any] = {"ef": max(k, int(p.get("ef", 64)))}
        elif self.index_type == "IVF_FLAT":
            params = {"nprobe": int(p.get("nprobe", 16))}
        else:
            params = {}
        res = self._client.search(
            COLLECTION, data=[q], limit=k, filter=to_milvus_expr(flt, self._schema),
            search_params={"metric_type": "IP", "params": params}, output_fields=["id"],
        )
        return np.fromiter((int(hit["id"]) for hit in res[0]), dtype=np.int64)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            # Stop the in-process milvus-lite server now (atexit would otherwise).
            with contextlib.suppress(Exception):
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self._uri)
