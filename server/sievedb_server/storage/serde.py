"""Serialisation of stored values: attributes (versioned msgpack), specs, label lists.

Attributes are stored as `b"\\x01" + msgpack(map)`; the leading byte is the format version so
later formats can be read side by side. Datetimes use msgpack's timestamp extension (UTC).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import msgpack
import numpy as np

from sievedb_server.core.types import (
    Attributes,
    CollectionSpec,
    FieldSpec,
    FieldType,
    HnswParams,
    Metric,
)
from sievedb_server.errors import CorruptData

__all__ = [
    "pack_attributes",
    "pack_labels",
    "pack_spec",
    "unpack_attributes",
    "unpack_labels",
    "unpack_spec",
]

ATTR_FORMAT_V1 = b"\x01"


def pack_attributes(attrs: Attributes) -> bytes:
    return ATTR_FORMAT_V1 + msgpack.packb(attrs, datetime=True, use_bin_type=True)


def unpack_attributes(raw: bytes) -> Attributes:
    if raw[:1] != ATTR_FORMAT_V1:
        raise CorruptData(f"unknown attribute format byte {bytes(raw[:1])!r}")
    try:
        value = msgpack.unpackb(raw[1:], timestamp=3, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError) as exc:
        raise CorruptData(f"unreadable attributes: {exc}") from exc
    if not isinstance(value, dict):
        raise CorruptData("stored attributes are not a map")
    return _utc(value)


def _utc(value: Any) -> Any:
    # msgpack returns aware datetimes in UTC; keep them as such, recursively for lists.
    if isinstance(value, dict):
        return {k: _utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utc(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def pack_spec(spec: CollectionSpec) -> bytes:
    doc = asdict(spec)
    doc["metric"] = spec.metric.value
    doc["schema"] = [
        {"name": f.name, "type": f.type.value, "indexed": f.indexed} for f in spec.schema
    ]
    return msgpack.packb({"v": 1, "spec": doc}, use_bin_type=True)


def unpack_spec(raw: bytes) -> CollectionSpec:
    try:
        doc = msgpack.unpackb(raw, raw=False)["spec"]
        return CollectionSpec(
            name=doc["name"],
            dim=int(doc["dim"]),
            metric=Metric(doc["metric"]),
            hnsw=HnswParams(**doc["hnsw"]),
            schema=tuple(
                FieldSpec(f["name"], FieldType(f["type"]), bool(f["indexed"]))
                for f in doc["schema"]
            ),
        )
    except (KeyError, TypeError, ValueError, msgpack.ExtraData) as exc:
        raise CorruptData(f"unreadable collection spec: {exc}") from exc


def pack_labels(labels: np.ndarray) -> bytes:
    return np.ascontiguousarray(labels, dtype="<u8").tobytes()


def unpack_labels(raw: bytes) -> np.ndarray:
    if len(raw) % 8:
        raise CorruptData("log entry length is not a multiple of 8")
    return np.frombuffer(raw, dtype="<u8").astype(np.int64)
