"""The LMDB key layout of one collection (the one owner of key encodings).

Each collection lives in its own LMDB environment, `<data_dir>/collections/<name>/store/`,
with these named databases:

| db        | key                         | value                                           |
|-----------|-----------------------------|-------------------------------------------------|
| `meta`    | ascii name                  | `spec` (msgpack), `watermark`/`next_label` (u64), `load:<id>` (u64 rows committed by a resumable bulk load) |
| `ids`     | encoded point id            | label (u64 BE)                                   |
| `labels`  | label (u64 BE)              | encoded point id                                 |
| `vectors` | label (u64 BE)              | raw little-endian float32 × dim                  |
| `attrs`   | label (u64 BE)              | versioned msgpack map (see serde)                |
| `log`     | write sequence (u64 BE)     | msgpack list of labels touched by that write     |
| `postings`| field \\0 value-key         | portable roaring bitmap of labels                |
| `numeric` | field \\0 sortable value \\0 label | empty (a sorted range index)               |
| `models`  | `m:` + model id             | msgpack model record (spec, state, generation, adapter) (`core.models`) |
|           | `default`                   | id of the active model (requests naming no model use it) |
| `probes`  | `ids`                       | msgpack list of probe item ids                   |
|           | `labels`                    | int64 LE class label per probe item              |
|           | `v:` + model id             | float32 LE probe embeddings of that model, one row per item |

Labels are internal uint64s assigned in arrival order and never reused, so a label names one
point for its whole life; big-endian keys make LMDB iterate them in order. Point ids are
encoded as `0x00 + u64 BE` (integers) or `0x01 + UTF-8` (strings), so both kinds coexist.
"""

from __future__ import annotations

import struct

from sievedb_server.core.types import PointId
from sievedb_server.errors import CorruptData

__all__ = [
    "DB_NAMES",
    "decode_label",
    "decode_point_id",
    "decode_u64",
    "encode_label",
    "encode_point_id",
    "encode_u64",
]

DB_NAMES = (
    "meta", "ids", "labels", "vectors", "attrs", "log", "postings", "numeric", "models", "probes",
)

META_SPEC = b"spec"
META_WATERMARK = b"watermark"
META_NEXT_LABEL = b"next_label"
META_FORMAT = b"format"
META_LOAD_PREFIX = b"load:"  # + bulk-load id: rows of that load committed (u64), same txn as the rows
FORMAT_VERSION = 1

MODEL_PREFIX = b"m:"
MODEL_DEFAULT = b"default"
PROBE_IDS = b"ids"
PROBE_LABELS = b"labels"
PROBE_VECTORS_PREFIX = b"v:"

_U64 = struct.Struct(">Q")


def encode_u64(value: int) -> bytes:
    return _U64.pack(value)


def decode_u64(raw: bytes) -> int:
    if len(raw) != 8:
        raise CorruptData(f"expected an 8-byte integer, found {len(raw)} bytes")
    return int(_U64.unpack(raw)[0])


encode_label = encode_u64
decode_label = decode_u64


def encode_point_id(pid: PointId) -> bytes:
    if isinstance(pid, int):
        return b"\x00" + _U64.pack(pid)
    return b"\x01" + pid.encode("utf-8")


def decode_point_id(raw: bytes) -> PointId:
    tag, body = raw[:1], raw[1:]
    if tag == b"\x00" and len(body) == 8:
        return int(_U64.unpack(body)[0])
    if tag == b"\x01":
        return bytes(body).decode("utf-8")
    raise CorruptData(f"unreadable point id key {bytes(raw)[:16]!r}")
