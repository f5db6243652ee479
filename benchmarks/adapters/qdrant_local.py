"""qdrant-client local mode (`QdrantClient(path=...)`) — NOT the Qdrant server.

`pip install qdrant-client` ships a "local mode" meant for tests and prototypes: the client's
own pure-Python/numpy implementation of the Qdrant API, persisted with SQLite. It has no HNSW
and no payload index: every query evaluates the filter in a Python loop over all points and
scores the passing ones by brute force. Results are therefore exact (recall 1) and its speed
says nothing about the Qdrant server (Rust, filterable HNSW, payload indexes, query planner),
which needs its own process/container and is not run here. The system is reported as
`qdrant_local` and labelled "qdrant-client local mode (not the Qdrant server)" everywhere.

Attributes become the payload as-is (keyword → str, keyword_list → list of str, where Qdrant's
`match` on an array means "any element matches", int/datetime → int, float, bool). The filter
translation is the Qdrant filter model (the same JSON the server accepts): must / should /
must_not with `match.value`, `match.any`, `range`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmarks.adapters.base import BuildInfo, System, dir_bytes
from benchmarks.adapters.peer_common import Untranslatable, cast, peer_version, require
from benchmarks.filterspec import AttributeTable, Filter

__all__ = ["QdrantLocal", "to_qdrant_filter"]

COLLECTION = "bench"
LABEL = "qdrant-client local mode (not the Qdrant server)"


def _condition(flt: Filter, schema: dict[str, str]) -> dict[str, Any]:
    """One filterspec node as a Qdrant condition (a FieldCondition or a nested Filter)."""
    op = flt[0]
    if op in ("and", "or", "not"):
        out = to_qdrant_filter(flt, schema)
        assert out is not None
        return out
    field = flt[1]
    kind = schema[field]
    if op == "eq":
        return {"key": field, "match": {"value": cast(flt[2], kind)}}
    if op == "in":
        values = [cast(v, kind) for v in flt[2]]
        if kind == "bool":  # MatchAny takes strings or ints only
            return {"should": [{"key": field, "match": {"value": v}} for v in values]}
        return {"key": field, "match": {"any": values}}
    if op == "contains":  # match on an array field = any element equals the value
        return {"key": field, "match": {"value": str(flt[2])}}
    if op == "range":
        rng = {}
        if flt[2] is not None:
            rng["gte"] = cast(flt[2], kind)
        if flt[3] is not None:
            rng["lte"] = cast(flt[3], kind)
        return {"key": field, "range": rng}
    raise Untranslatable(f"unknown filter operator {op!r}")


def to_qdrant_filter(flt: Filter | None, schema: dict[str, str]) -> dict[str, Any] | None:
    """The filter as Qdrant's filter JSON (`models.Filter.model_validate` takes it).

    and → must, or → should (at least one), not → must_not [f].
    """
    if flt is None:
        return None
    op = flt[0]
    if op == "and":
        return {"must": [_condition(f, schema) for f in flt[1:]]}
    if op == "or":
        return {"should": [_condition(f, schema) for f in flt[1:]]}
    if op == "not":
        return {"must_not": [_condition(flt[1], schema)]}
    return {"must": [_condition(flt, schema)]}


class QdrantLocal(System):
    """qdrant-client local mode: exact numpy scoring, per-point Python filter evaluation."""

    name = "qdrant_local"
    label = LABEL
    param_names = ()
    thread_safe: ClassVar[bool] = False

    def __init__(self, workdir: Path, **build_params: Any) -> None:
        super().__init__(workdir, **build_params)
        self._qc = require("qdrant_client", "qdrant-client")
        self._schema: dict[str, str] = {}
        self._client: Any = None

    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        from qdrant_client import models

        path = self.workdir / "qdrant_local"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        self._schema = table.schema
        n, dim = base.shape
        t0 = time.perf_counter()
        # Default ":memory:": with `path=` local mode commits SQLite once per point (~20 ms
        # each here, fsync), so 100k points would take over half an hour to load. Search is
        # the same code either way (persistence only writes through); `in_memory=False`
        # gives the persisted variant.
        if self.build_params.get("in_memory", True):
            self._client = self._qc.QdrantClient(location=":memory:")
        else:
            self._client = self._qc.QdrantClient(path=str(path))
        self._client.create_collection(
            COLLECTION,
            vectors_config=models.VectorParams(size=dim, distance=models.Distance.DOT),
        )
        batch = int(self.build_params.get("batch_rows", 5_000))
        for lo in range(0, n, batch):
            hi = min(n, lo + batch)
            self._client.upsert(
                COLLECTION,
                points=models.Batch(
                    ids=list(range(lo, hi)),
                    vectors=np.ascontiguousarray(base[lo:hi], dtype=np.float32).tolist(),
                    payloads=list(table.rows(lo, hi)),
                ),
            )
        seconds = time.perf_counter() - t0
        return BuildInfo(
            seconds=seconds,
            disk_bytes=dir_bytes(self.workdir),
            in_memory=bool(self.build_params.get("in_memory", True)),
            extra={"version": peer_version("qdrant-client"), "label": LABEL,
                   "index": "none (exact scan)"},
        )

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        from qdrant_client import models

        spec = to_qdrant_filter(flt, self._schema)
        qf = models.Filter.model_validate(spec) if spec is not None else None
        res = self._client.query_points(COLLECTION, query=q, query_filter=qf, limit=k,
                                        with_payload=False)
        return np.fromiter((int(p.id) for p in res.points), dtype=np.int64)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
