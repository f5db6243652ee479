"""LanceDB (embedded, local Lance files) behind the suite's `System` interface.

What a user gets from `pip install lancedb`: a table on local disk, a vector index, scalar
indexes on the filtered columns, and `table.search(q).where(sql, prefilter=...)`.

Attributes: keyword → string, keyword_list → `list<string>` (`array_has_any`), int/datetime →
int64 (epoch seconds), float → float64, bool → bool. With `scalar_indexes=True` (default) the
adapter builds what LanceDB's docs recommend for filtered search: BTREE on numeric/datetime
columns, BITMAP on keyword/bool columns, LABEL_LIST on list columns.

Vector index (`index_type` build parameter):
* `IVF_HNSW_FLAT` (default): LanceDB's HNSW over raw vectors inside IVF partitions; with
  `num_partitions=1` (default) it is one HNSW graph, M=16 / efConstruction=200 like the hnswlib
  baselines. Query-time `ef`.
* `IVF_HNSW_SQ`: the same graph over 8-bit scalar-quantised vectors; `refine_factor` re-ranks
  `k·refine_factor` candidates with full vectors.
* `IVF_PQ` / `IVF_FLAT`: IVF (num_partitions default √n); query-time `nprobes` (and
  `refine_factor` for PQ).

Query-time `prefilter` (default True): True evaluates the filter first and searches only
matching rows; False is LanceDB's post-filter (ANN top-k, then filter), which can return fewer
than k rows — the suite counts that against recall, it is not hidden.
"""

from __future__ import annotations

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
    sql_where,
    write_build_marker,
)
from benchmarks.filterspec import AttributeTable, Column, Filter

__all__ = ["LanceDB", "to_lance_sql"]

_HNSW_TYPES = ("IVF_HNSW_FLAT", "IVF_HNSW_SQ")
_INDEX_TYPES = (*_HNSW_TYPES, "IVF_PQ", "IVF_FLAT")


def _ident(field: str) -> str:
    return "`" + field.replace("`", "``") + "`"


def _lit(value: Any, kind: str) -> str:
    v = cast(value, kind)
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Untranslatable(f"non-finite bound {v!r}")
        return repr(v)
    return str(v)


def to_lance_sql(flt: Filter | None, schema: dict[str, str]) -> str | None:
    """The filter as a LanceDB SQL predicate (None = no filter).

    eq → `=`, in → `IN (...)`, contains → `array_has_any(col, [v])` (the form LanceDB's
    LABEL_LIST index serves), range → `BETWEEN` / `>=` / `<=`, and/or/not → SQL's. Every
    filterspec filter has a spelling, so this never raises for a valid filter.
    """
    return sql_where(
        flt, schema, ident=_ident, lit=_lit,
        contains=lambda col, v: f"array_has_any({col}, [{v}])",
    )


def _arrow_column(col: Column, lo: int, hi: int) -> Any:
    """Rows lo..hi of one attribute column as a pyarrow array of the peer's type."""
    import pyarrow as pa

    if col.kind == "keyword":
        vocab = pa.array(list(col.vocab or ()), pa.string())
        return vocab.take(pa.array(col.values[lo:hi]))
    if col.kind == "keyword_list":
        assert col.indptr is not None
        vocab = pa.array(list(col.vocab or ()), pa.string())
        a, b = int(col.indptr[lo]), int(col.indptr[hi])
        offsets = (col.indptr[lo:hi + 1] - a).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), vocab.take(pa.array(col.values[a:b])))
    if col.kind == "float":
        return pa.array(col.values[lo:hi].astype(np.float64))
    if col.kind == "bool":
        return pa.array(col.values[lo:hi].astype(bool))
    return pa.array(col.values[lo:hi].astype(np.int64))


class LanceDB(System):
    """lancedb (embedded): HNSW/IVF vector index + scalar indexes, SQL `where` filters."""

    name = "lancedb"
    param_names = ("ef", "nprobes", "refine_factor", "prefilter")
    thread_safe: ClassVar[bool] = True

    def __init__(self, workdir: Path, **build_params: Any) -> None:
        super().__init__(workdir, **build_params)
        self._lancedb = require("lancedb", "lancedb")
        self.index_type = str(build_params.get("index_type", "IVF_HNSW_FLAT")).upper()
        if self.index_type not in _INDEX_TYPES:
            raise ValueError(f"lancedb index_type must be one of {_INDEX_TYPES}")
        self._schema: dict[str, str] = {}
        self._tbl: Any = None

    def _vector_index_config(self, n: int) -> Any:
        from lancedb.index import HnswFlat, HnswSq, IvfFlat, IvfPq

        m = int(self.build_params.get("m", 16))
        efc = int(self.build_params.get("ef_construction", 200))
        if self.index_type in _HNSW_TYPES:
            parts = int(self.build_params.get("num_partitions", 1))
            cls = HnswFlat if self.index_type == "IVF_HNSW_FLAT" else HnswSq
            return cls(distance_type="dot", num_partitions=parts, m=m, ef_construction=efc)
        parts = int(self.build_params.get("num_partitions", max(1, int(math.sqrt(n)))))
        if self.index_type == "IVF_PQ":
            sub = self.build_params.get("num_sub_vectors")
            return IvfPq(distance_type="dot", num_partitions=parts,
                         num_sub_vectors=int(sub) if sub else None)
        return IvfFlat(distance_type="dot", num_partitions=parts)

    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        import pyarrow as pa
        from lancedb.index import Bitmap, BTree, LabelList

        path = self.workdir / "lance"
        self._schema = table.schema
        key = build_key(self.name, "lancedb", base, table,
                        {**self.build_params, "index_type": self.index_type})
        done = read_build_marker(self.workdir, key) if self.build_params.get("reuse", True) else None
        if done is not None:  # the same data and parameters were built here before: reopen
            self._tbl = self._lancedb.connect(str(path)).open_table("bench")
            self.search(base[0], None, 1)
            return BuildInfo(seconds=float(done["seconds"]), disk_bytes=dir_bytes(self.workdir),
                             cached=True, extra=done["extra"])
        (self.workdir / MARKER).unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        n, dim = base.shape
        t0 = time.perf_counter()
        db = self._lancedb.connect(str(path))
        chunk = int(self.build_params.get("chunk_rows", 50_000))
        tbl = None
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            vec = np.ascontiguousarray(base[lo:hi], dtype=np.float32).ravel()
            cols = {
                "id": pa.array(np.arange(lo, hi, dtype=np.int64)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec), dim),
            }
            for name, col in table.columns.items():
                cols[name] = _arrow_column(col, lo, hi)
            batch = pa.table(cols)
            if tbl is None:
                # Create empty, then add: LanceDB's documented parallel write path.
                tbl = db.create_table("bench", schema=batch.schema)
            tbl.add(batch)
        assert tbl is not None
        load_s = time.perf_counter() - t0
        tbl.create_index("vector", config=self._vector_index_config(n))
        if self.build_params.get("scalar_indexes", True):
            for name, kind in self._schema.items():
                config = (LabelList() if kind == "keyword_list"
                          else Bitmap() if kind in ("keyword", "bool") else BTree())
                tbl.create_index(name, config=config)
        self._tbl = tbl
        self.search(base[0], None, 1)  # open the index before timing starts
        seconds = time.perf_counter() - t0
        extra = {"version": peer_version("lancedb"), "index": self.index_type,
                 "load_seconds": load_s,
                 "scalar_indexes": bool(self.build_params.get("scalar_indexes", True))}
        write_build_marker(self.workdir, key, seconds, extra)
        return BuildInfo(seconds=seconds, disk_bytes=dir_bytes(self.workdir), extra=extra)

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        p = self.query_params
        qb = (self._tbl.search(q, vector_column_name="vector").distance_type("dot")
              .limit(k).select(["id", "_distance"]))
        sql = to_lance_sql(flt, self._schema)
        if sql is not None:
            qb = qb.where(sql, prefilter=bool(p.get("prefilter", True)))
        if self.index_type in _HNSW_TYPES:
            qb = qb.ef(max(k, int(p.get("ef", 64))))
        if "nprobes" in p:
            qb = qb.nprobes(int(p["nprobes"]))
        if p.get("refine_factor"):
            qb = qb.refine_factor(int(p["refine_factor"]))
        return qb.to_arrow().column("id").to_numpy().astype(np.int64, copy=False)
