"""Client-side translation between Python/numpy values and `sievedb.v1` messages (private).

Vectors travel as little-endian float32 bytes; decoded vectors are fresh, writable float32
arrays owned by the caller. Filters may be given as a text expression, an `F` builder object
(anything with `.to_proto()`), a raw `sievedb.v1.Filter`, or None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb._values import decode_value, encode_value
from sievedb.errors import InvalidArgument
from sievedb.types import (
    FIELD_TYPES,
    Attributes,
    CollectionInfo,
    Field,
    Hit,
    HnswConfig,
    Plan,
    PlanStage,
    Point,
    PointId,
    SearchResult,
)

__all__ = [
    "decode_info",
    "decode_point",
    "decode_result",
    "encode_attributes",
    "encode_field",
    "encode_filter",
    "encode_id",
    "encode_metric",
    "encode_vectors",
    "query_vector",
    "vector_matrix",
]

_F32 = np.dtype("<f4")
_METRICS: dict[str, int] = {
    "cosine": pb.COSINE,
    "ip": pb.INNER_PRODUCT,
    "inner_product": pb.INNER_PRODUCT,
    "dot": pb.INNER_PRODUCT,
    "l2": pb.L2,
    "euclidean": pb.L2,
}
_METRIC_NAMES = {pb.COSINE: "cosine", pb.INNER_PRODUCT: "ip", pb.L2: "l2"}
_FIELD_TYPES: dict[str, int] = {name: pb.FieldType.Value(name.upper()) for name in FIELD_TYPES}
_FIELD_TYPE_NAMES = {v: k for k, v in _FIELD_TYPES.items()}


def local_error(message: str) -> InvalidArgument:
    """An argument problem caught before any RPC (no request id)."""
    return InvalidArgument(message, reason="INVALID_ARGUMENT")


# --- ids and vectors -----------------------------------------------------------------------


def encode_id(pid: Any) -> pb.PointId:
    if isinstance(pid, str):
        return pb.PointId(str=pid)
    if isinstance(pid, int | np.integer) and not isinstance(pid, bool | np.bool_):
        value = int(pid)
        if not 0 <= value < 2**64:
            raise local_error(f"point id {value} is outside the unsigned 64-bit range")
        return pb.PointId(num=value)
    raise local_error(f"point id {pid!r} must be an unsigned 64-bit integer or a string")


def decode_id(msg: pb.PointId) -> PointId:
    return msg.str if msg.WhichOneof("kind") == "str" else int(msg.num)


def vector_matrix(vectors: Any) -> np.ndarray:
    """Any array-like → C-contiguous little-endian float32 of shape (n, dim)."""
    arr = np.ascontiguousarray(vectors, dtype=_F32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise local_error(f"vectors must be a 2-D (n, dim) array, got shape {arr.shape}")
    return arr


def query_vector(vector: Any) -> np.ndarray:
    """A single query: 1-D, or 2-D with exactly one row."""
    arr = np.ascontiguousarray(vector, dtype=_F32)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise local_error(f"a query vector must be 1-D, got shape {arr.shape}")
    return arr


def encode_vectors(matrix: np.ndarray) -> pb.Vectors:
    return pb.Vectors(data=matrix.tobytes(), dim=matrix.shape[1], count=matrix.shape[0])


def _decode_vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=_F32).astype(np.float32)


# --- attributes and filters ----------------------------------------------------------------


def encode_attributes(attributes: Mapping[str, Any] | None) -> pb.Attributes:
    msg = pb.Attributes()
    for key, value in (attributes or {}).items():
        msg.fields[key].CopyFrom(encode_value(value))
    return msg


def decode_attributes(msg: pb.Attributes) -> Attributes:
    return {key: decode_value(value) for key, value in msg.fields.items()}


def encode_filter(flt: Any) -> pb.Filter | None:
    """None | text expression | F builder object | `sievedb.v1.Filter` → `Filter` or None."""
    if flt is None:
        return None
    if isinstance(flt, pb.Filter):
        return flt
    if isinstance(flt, str):
        return pb.Filter(expr=flt)
    to_proto = getattr(flt, "to_proto", None)
    if to_proto is None:
        raise local_error(
            f"filter must be a text expression, an F builder object or None, not {type(flt).__name__}"
        )
    msg = to_proto()
    if isinstance(msg, pb.Condition):
        return pb.Filter(must=[msg])
    if not isinstance(msg, pb.Filter):
        raise local_error(f"{type(flt).__name__}.to_proto() returned {type(msg).__name__}")
    return msg


# --- collections ---------------------------------------------------------------------------


def encode_metric(metric: str) -> int:
    try:
        return _METRICS[metric.lower()]
    except (KeyError, AttributeError):
        raise local_error(f"unknown metric {metric!r}; use cosine, ip or l2") from None


def encode_field(spec: Any) -> pb.FieldSchema:
    """`Field`, `(name, type)` or `(name, type, indexed)` → `FieldSchema`."""
    field = spec if isinstance(spec, Field) else Field(*spec)
    field_type = _FIELD_TYPES.get(str(field.type).lower())
    if field_type is None:
        raise local_error(
            f"field {field.name!r}: unknown type {field.type!r}; use one of {', '.join(FIELD_TYPES)}"
        )
    return pb.FieldSchema(name=field.name, type=field_type, indexed=field.indexed)


def encode_schema(schema: Mapping[str, str] | Iterable[Any] | None) -> list[pb.FieldSchema]:
    if schema is None:
        return []
    if isinstance(schema, Mapping):
        return [encode_field((name, type_)) for name, type_ in schema.items()]
    return [encode_field(f) for f in schema]


def decode_info(msg: pb.CollectionInfo) -> CollectionInfo:
    spec = msg.spec
    return CollectionInfo(
        name=spec.name,
        dim=spec.dim,
        metric=_METRIC_NAMES.get(spec.metric, "cosine"),
        hnsw=HnswConfig(
            m=spec.hnsw.m,
            ef_construction=spec.hnsw.ef_construction,
            ef_search=spec.hnsw.ef_search,
            full_scan_threshold=spec.hnsw.full_scan_threshold,
        ),
        schema=tuple(
            Field(f.name, _FIELD_TYPE_NAMES.get(f.type, "unspecified"), f.indexed)
            for f in spec.schema
        ),
        point_count=msg.point_count,
        indexed_count=msg.indexed_count,
        watermark=msg.watermark,
        index_watermark=msg.index_watermark,
        disk_bytes=msg.disk_bytes,
    )


# --- points and results --------------------------------------------------------------------


def decode_point(msg: pb.Point, *, with_vectors: bool, with_attributes: bool) -> Point:
    return Point(
        id=decode_id(msg.id),
        vector=_decode_vector(msg.vector) if with_vectors else None,
        attributes=decode_attributes(msg.attributes) if with_attributes else None,
    )


def decode_result(
    msg: pb.SearchResult, *, with_vectors: bool, with_attributes: bool
) -> SearchResult:
    hits = tuple(
        Hit(
            id=decode_id(h.id),
            score=float(h.score),
            attributes=decode_attributes(h.attributes) if with_attributes else None,
            vector=_decode_vector(h.vector) if with_vectors else None,
        )
        for h in msg.hits
    )
    plan = None
    if msg.HasField("plan"):
        p = msg.plan
        plan = Plan(
            strategy=p.strategy,
            allowed=p.allowed,
            total=p.total,
            ef=p.ef,
            stages=tuple(PlanStage(s.name, s.nanos) for s in p.stages),
            detail=p.detail,
        )
    return SearchResult(hits=hits, plan=plan)


def id_list(ids: Sequence[Any] | np.ndarray | Any) -> list[pb.PointId]:
    if isinstance(ids, str | int | np.integer):
        ids = [ids]
    return [encode_id(i) for i in ids]
