"""proto ⇄ domain translation for everything except filters (those live in `filter_codec`).

Contracts:

* Decoders reject malformed *wire* data themselves (unset oneofs, vector byte lengths that
  are not `4 * dim * count`, count or length mismatches between parallel fields) with
  `InvalidArgument` / `InvalidVector`. Semantic checks (NaN, dimension vs collection, name
  rules, k > 0) belong to the engine and the domain types.
* Vectors are decoded zero-copy with `np.frombuffer(data, '<f4')`: the arrays are READ-ONLY
  views of the request bytes. Consumers must copy before mutating.
* Proto3 zeros mean "server default": `ef == 0` → None, HNSW parameters 0 → `HnswParams`
  defaults, scroll `limit == 0` → 100, `METRIC_UNSPECIFIED` → cosine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb_server.core.imports import ImportOperation, ImportSource
from sievedb_server.core.types import (
    Attributes,
    CollectionInfo,
    CollectionSpec,
    FieldSpec,
    FieldType,
    Hit,
    HnswParams,
    Metric,
    Plan,
    Point,
    PointId,
    ScrollPage,
    SearchParams,
    SearchResult,
)
from sievedb_server.errors import InvalidArgument, InvalidAttributes, InvalidVector
from sievedb_server.transport.filter_codec import decode_value, encode_value

__all__ = [
    "DEFAULT_SCROLL_LIMIT",
    "decode_attributes",
    "decode_attributes_list",
    "decode_bulk_chunk",
    "decode_field",
    "decode_hnsw",
    "decode_id",
    "decode_ids",
    "decode_import_source",
    "decode_query",
    "decode_search_params",
    "decode_spec",
    "decode_upsert",
    "decode_vectors",
    "encode_attributes",
    "encode_field",
    "encode_hit",
    "encode_id",
    "encode_info",
    "encode_operation",
    "encode_plan",
    "encode_point",
    "encode_scroll_page",
    "encode_search_result",
    "encode_spec",
    "encode_vectors",
]

DEFAULT_SCROLL_LIMIT = 100
_F32 = np.dtype("<f4")

_METRIC_FROM_PB: dict[int, Metric] = {
    pb.METRIC_UNSPECIFIED: Metric.COSINE,
    pb.COSINE: Metric.COSINE,
    pb.INNER_PRODUCT: Metric.INNER_PRODUCT,
    pb.L2: Metric.L2,
}
_METRIC_TO_PB: dict[Metric, int] = {
    Metric.COSINE: pb.COSINE,
    Metric.INNER_PRODUCT: pb.INNER_PRODUCT,
    Metric.L2: pb.L2,
}
_FIELD_TYPE_FROM_PB: dict[int, FieldType] = {
    pb.KEYWORD: FieldType.KEYWORD,
    pb.KEYWORD_LIST: FieldType.KEYWORD_LIST,
    pb.INTEGER: FieldType.INTEGER,
    pb.FLOAT: FieldType.FLOAT,
    pb.BOOLEAN: FieldType.BOOLEAN,
    pb.DATETIME: FieldType.DATETIME,
}
_FIELD_TYPE_TO_PB: dict[FieldType, int] = {v: k for k, v in _FIELD_TYPE_FROM_PB.items()}


# --- ids -----------------------------------------------------------------------------------


def decode_id(msg: pb.PointId) -> PointId:
    kind = msg.WhichOneof("kind")
    if kind == "num":
        return int(msg.num)
    if kind == "str":
        return str(msg.str)
    raise InvalidArgument("point id has neither `num` nor `str` set")


def decode_ids(msgs: Iterable[pb.PointId]) -> list[PointId]:
    return [decode_id(m) for m in msgs]


def encode_id(pid: PointId) -> pb.PointId:
    if isinstance(pid, str):
        return pb.PointId(str=pid)
    if isinstance(pid, int | np.integer) and not isinstance(pid, bool):
        return pb.PointId(num=int(pid))
    raise TypeError(f"point id must be int or str, got {type(pid).__name__}")


# --- vectors -------------------------------------------------------------------------------


def decode_vectors(msg: pb.Vectors, *, what: str = "vectors") -> np.ndarray:
    """`Vectors` → read-only float32 array of shape (count, dim), without copying."""
    dim, count, data = int(msg.dim), int(msg.count), msg.data
    if dim == 0:
        raise InvalidVector(f"{what}: dim must be positive")
    if len(data) != 4 * dim * count:
        raise InvalidVector(
            f"{what}: {len(data)} bytes do not hold {count} float32 vectors of dim {dim} "
            f"(expected {4 * dim * count} bytes)"
        )
    return np.frombuffer(data, dtype=_F32).reshape(count, dim)


def decode_query(msg: pb.Vectors) -> np.ndarray:
    """The single query vector of a `SearchRequest`, shape (dim,)."""
    if msg.count != 1:
        raise InvalidVector(f"query: count must be 1, got {msg.count}")
    return decode_vectors(msg, what="query")[0]


def encode_vectors(vectors: np.ndarray) -> pb.Vectors:
    arr = np.ascontiguousarray(vectors, dtype=_F32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"vectors must be 1-D or 2-D, got shape {arr.shape}")
    return pb.Vectors(data=arr.tobytes(), dim=arr.shape[1], count=arr.shape[0])


def _vector_bytes(vector: np.ndarray | None) -> bytes:
    if vector is None:
        return b""
    return np.ascontiguousarray(vector, dtype=_F32).tobytes()


# --- attributes ----------------------------------------------------------------------------


def decode_attributes(msg: pb.Attributes) -> Attributes:
    return {key: decode_value(value) for key, value in msg.fields.items()}


def decode_attributes_list(msgs: Sequence[pb.Attributes], n: int) -> list[Attributes] | None:
    """Empty → None (no attributes given); otherwise exactly one per id."""
    if len(msgs) == 0:
        return None
    if len(msgs) != n:
        raise InvalidAttributes(
            f"got {len(msgs)} attribute maps for {n} ids: give none or one per id"
        )
    return [decode_attributes(m) for m in msgs]


def encode_attributes(attributes: Mapping[str, Any]) -> pb.Attributes:
    msg = pb.Attributes()
    for key, value in attributes.items():
        msg.fields[key].CopyFrom(encode_value(value))
    return msg


# --- collections ---------------------------------------------------------------------------


def decode_hnsw(msg: pb.HnswConfig) -> HnswParams:
    defaults = HnswParams()
    return HnswParams(
        m=msg.m or defaults.m,
        ef_construction=msg.ef_construction or defaults.ef_construction,
        ef_search=msg.ef_search or defaults.ef_search,
        full_scan_threshold=(
            msg.full_scan_threshold
            if msg.HasField("full_scan_threshold")
            else defaults.full_scan_threshold
        ),
    )


def decode_field(msg: pb.FieldSchema) -> FieldSpec:
    field_type = _FIELD_TYPE_FROM_PB.get(msg.type)
    if field_type is None:
        raise InvalidArgument(f"field {msg.name!r}: unknown or unspecified field type {msg.type}")
    if not msg.name:
        raise InvalidArgument("field name must not be empty")
    return FieldSpec(
        name=msg.name, type=field_type, indexed=msg.indexed if msg.HasField("indexed") else True
    )


def encode_field(spec: FieldSpec) -> pb.FieldSchema:
    return pb.FieldSchema(name=spec.name, type=_FIELD_TYPE_TO_PB[spec.type], indexed=spec.indexed)


def decode_spec(msg: pb.CollectionSpec) -> CollectionSpec:
    metric = _METRIC_FROM_PB.get(msg.metric)
    if metric is None:
        raise InvalidArgument(f"unknown metric {msg.metric}")
    return CollectionSpec(
        name=msg.name,
        dim=int(msg.dim),
        metric=metric,
        hnsw=decode_hnsw(msg.hnsw),
        schema=tuple(decode_field(f) for f in msg.schema),
    )


def encode_spec(spec: CollectionSpec) -> pb.CollectionSpec:
    hnsw = spec.hnsw
    return pb.CollectionSpec(
        name=spec.name,
        dim=spec.dim,
        metric=_METRIC_TO_PB[Metric(spec.metric)],
        hnsw=pb.HnswConfig(
            m=hnsw.m,
            ef_construction=hnsw.ef_construction,
            ef_search=hnsw.ef_search,
            full_scan_threshold=hnsw.full_scan_threshold,
        ),
        schema=[encode_field(f) for f in spec.schema],
    )


def encode_info(info: CollectionInfo) -> pb.CollectionInfo:
    return pb.CollectionInfo(
        spec=encode_spec(info.spec),
        point_count=info.point_count,
        indexed_count=info.indexed_count,
        watermark=info.watermark,
        index_watermark=info.index_watermark,
        disk_bytes=info.disk_bytes,
    )


# --- bulk load -----------------------------------------------------------------------------


def decode_bulk_chunk(
    msg: pb.BulkLoadRequest,
) -> tuple[list[PointId], np.ndarray, list[Attributes] | None]:
    """(ids, vectors, attributes or None) of one bulk-load chunk, checked like an upsert."""
    return decode_upsert(msg)  # type: ignore[arg-type]  # same field names and rules


def decode_import_source(msg: pb.ImportSource) -> ImportSource:
    return ImportSource(
        path=msg.path,
        format=msg.format,
        vector_column=msg.vector_column,
        id_column=msg.id_column,
        attribute_columns=tuple(msg.attribute_columns),
        attributes_path=msg.attributes_path,
        ids_path=msg.ids_path,
        dataset=msg.dataset,
        limit=int(msg.limit),
        id_type=msg.id_type,
    )


def encode_operation(op: ImportOperation, info: CollectionInfo | None) -> pb.Operation:
    msg = pb.Operation(
        id=op.id,
        collection=op.collection,
        state=op.state,
        rows_done=op.rows_done,
        rows_total=op.rows_total,
        error=op.error,
        load_id=op.load_id,
    )
    if info is not None:
        msg.info.CopyFrom(encode_info(info))
    return msg


# --- points --------------------------------------------------------------------------------


def decode_upsert(
    msg: pb.UpsertRequest,
) -> tuple[list[PointId], np.ndarray, list[Attributes] | None]:
    """(ids, vectors (n, dim), attributes or None) with all parallel lengths checked."""
    if not msg.HasField("vectors"):
        raise InvalidVector("upsert: `vectors` is not set")
    ids = decode_ids(msg.ids)
    vectors = decode_vectors(msg.vectors)
    if vectors.shape[0] != len(ids):
        raise InvalidArgument(f"upsert: {len(ids)} ids but {vectors.shape[0]} vectors")
    return ids, vectors, decode_attributes_list(msg.attributes, len(ids))


def encode_point(point: Point) -> pb.Point:
    msg = pb.Point(id=encode_id(point.id), vector=_vector_bytes(point.vector))
    if point.attributes is not None:
        msg.attributes.CopyFrom(encode_attributes(point.attributes))
    return msg


def encode_scroll_page(page: ScrollPage) -> pb.ScrollResponse:
    return pb.ScrollResponse(
        points=[encode_point(p) for p in page.points], next_cursor=page.next_cursor
    )


# --- search --------------------------------------------------------------------------------


def decode_search_params(msg: pb.SearchParams) -> SearchParams:
    """Pass `k` through (the domain rejects k <= 0); `ef == 0` means the collection default."""
    return SearchParams(
        k=int(msg.k),
        ef=int(msg.ef) or None,
        exact=msg.exact,
        with_attributes=msg.with_attributes,
        with_vectors=msg.with_vectors,
        explain=msg.explain,
    )


def encode_hit(hit: Hit) -> pb.Hit:
    msg = pb.Hit(id=encode_id(hit.id), score=float(hit.score), vector=_vector_bytes(hit.vector))
    if hit.attributes is not None:
        msg.attributes.CopyFrom(encode_attributes(hit.attributes))
    return msg


def encode_plan(plan: Plan) -> pb.Plan:
    return pb.Plan(
        strategy=plan.strategy,
        allowed=plan.allowed,
        total=plan.total,
        ef=plan.ef,
        stages=[pb.PlanStage(name=s.name, nanos=max(0, s.nanos)) for s in plan.stages],
        detail=plan.detail,
    )


def encode_search_result(result: SearchResult) -> pb.SearchResult:
    msg = pb.SearchResult(hits=[encode_hit(h) for h in result.hits])
    if result.plan is not None:
        msg.plan.CopyFrom(encode_plan(result.plan))
    return msg
