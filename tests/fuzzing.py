"""Shared pieces of the fuzz suites (`test_fuzz_*.py`): settings and message strategies.

Settings: small, derandomized example counts in CI; `SIEVEDB_FUZZ_EXAMPLES=N` raises every
target to N examples and turns derandomization off (the campaign script,
`benchmarks/fuzz_campaign.py`, sets it and passes `--hypothesis-seed`).

`messages(descriptor)` draws protobuf messages from their descriptors: every field set or
not at random, oneofs with at most one member, extreme and hostile scalars (NaN, huge
integers, path-like and control-character strings, odd byte lengths), maps, nested messages
to a bounded depth, and now and then a repeated field with thousands of entries.
`plausible(msg)` then makes a share of them look like real traffic (an existing collection,
well-formed vectors of the right or a wrong dimension), so the fuzzer gets past the first
check and reaches the engine.
"""

from __future__ import annotations

import os
import struct
from datetime import UTC
from typing import Any

import numpy as np
from google.protobuf import descriptor as _d
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sievedb_proto import values
from sievedb_proto.v1 import sievedb_pb2 as pb

CAMPAIGN_EXAMPLES = int(os.environ.get("SIEVEDB_FUZZ_EXAMPLES", "0") or 0)
DIM = 4
COLLECTION = "c"


def fuzz_settings(ci_examples: int) -> settings:
    """CI: `ci_examples`, derandomized; campaign: SIEVEDB_FUZZ_EXAMPLES, random."""
    return settings(
        max_examples=CAMPAIGN_EXAMPLES or ci_examples,
        derandomize=not CAMPAIGN_EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        print_blob=True,
    )


# --- scalars -------------------------------------------------------------------------------

HOSTILE_STRINGS = [
    "", "g", "tags", "v1", "../x", "a/b", "..", "a\x00b", "\x1f", "\x85",
    "x" * 600, "é" * 200, "€" * 171, "id", "and", "`", "\ud7ff", "a" * 65, "m:1",
]
strings = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=24))


def _floats32(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


float_bytes = st.lists(
    st.one_of(
        st.floats(width=32, allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, 1.0, -1.0, float("nan"), float("inf")]),
    ),
    max_size=24,
).map(_floats32)
raw_bytes = st.one_of(st.binary(max_size=64), float_bytes, st.sampled_from([b"", b"\0" * 8]))

_INT_EDGES = [0, 1, 2, 3, 4, 5, 7, 10, 100, 4096, 4097, 10_000, 10_001, 65_536, 100_001]
_RANGES: dict[int, tuple[int, int]] = {
    _d.FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    _d.FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _d.FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _d.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    _d.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    _d.FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    _d.FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _d.FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _d.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    _d.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [v for v in [*_INT_EDGES, lo, hi, -1] if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def scalar(field: _d.FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t == field.TYPE_STRING:
        return strings
    if t == field.TYPE_BYTES:
        return raw_bytes
    if t == field.TYPE_BOOL:
        return st.booleans()
    if t in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
        return st.floats(width=32 if t == field.TYPE_FLOAT else 64)
    if t == field.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-1, 12))
    lo, hi = _RANGES[t]
    return _ints(lo, hi)


# --- messages ------------------------------------------------------------------------------


def _class(desc: _d.Descriptor) -> type[Message]:
    return GetMessageClass(desc)


def _repeated(field: _d.FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6 drops `label`
    return bool(flag) if flag is not None else field.label == field.LABEL_REPEATED


def _is_map(field: _d.FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def messages(desc: _d.Descriptor, depth: int = 5, huge: bool = True) -> st.SearchStrategy[Message]:
    """Random messages of type `desc` (nested messages down to `depth` levels).

    Only the top-level message gets huge repeated fields (`huge`): thousands of copies of a
    nested message that itself holds thousands would need gigabytes.
    """

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        msg = _class(desc)()
        chosen = {}
        for oneof in desc.oneofs:
            members = list(oneof.fields)
            if len(members) == 1 and members[0].has_presence and oneof.name.startswith("_"):
                continue  # proto3 `optional`: a synthetic oneof, treated as a plain field
            chosen[oneof.name] = draw(st.sampled_from([None, *members]))
        for field in desc.fields:
            oneof = field.containing_oneof
            if oneof is not None and oneof.name in chosen:
                if chosen[oneof.name] is not field:
                    continue
            elif not draw(st.booleans()):
                continue
            _set_field(draw, msg, field, depth, huge)
        return msg

    return build()


def _value(draw: st.DrawFn, field: _d.FieldDescriptor, depth: int) -> Any:
    if field.message_type is not None:
        return draw(messages(field.message_type, depth - 1, huge=False))
    return draw(scalar(field))


def _set_field(
    draw: st.DrawFn, msg: Message, field: _d.FieldDescriptor, depth: int, huge_ok: bool
) -> None:
    if field.message_type is not None and depth <= 0:
        return
    if _is_map(field):
        entry = field.message_type.fields_by_name
        key_f, value_f = entry["key"], entry["value"]
        target = getattr(msg, field.name)
        for _ in range(draw(st.integers(0, 4))):
            key = draw(scalar(key_f))
            value = _value(draw, value_f, depth)
            if value_f.message_type is not None:
                target[key].CopyFrom(value)
            else:
                target[key] = value
        return
    if _repeated(field):
        target = getattr(msg, field.name)
        huge = huge_ok and draw(st.integers(0, 19)) == 0  # now and then: thousands of entries
        count = draw(st.integers(1000, 5000)) if huge else draw(st.integers(0, 3))
        items = [_value(draw, field, depth) for _ in range(1 if huge else count)]
        if huge and items:
            items = items * count
        if field.message_type is not None:
            target.extend(items)
        else:
            _try(lambda: target.extend(items))
        return
    value = _value(draw, field, depth)
    if field.message_type is not None:
        getattr(msg, field.name).CopyFrom(value)
    else:
        _try(lambda: setattr(msg, field.name, value))


def _try(action: Any) -> None:
    try:
        action()
    except (ValueError, TypeError):  # e.g. a surrogate in a string: not sendable at all
        pass


# --- plausible traffic -------------------------------------------------------------------------


def _vectors(draw: st.DrawFn, *, single: bool = False) -> pb.Vectors:
    dim = draw(st.sampled_from([DIM, DIM, DIM, DIM - 1, DIM + 1, 0, 1]))
    count = 1 if single else draw(st.integers(0, 6))
    values = np.asarray(
        draw(st.lists(st.floats(-4, 4, width=32), min_size=count * dim, max_size=count * dim)),
        dtype="<f4",
    ).reshape(count, dim) if dim else np.zeros((count, 0), "<f4")
    if values.size and draw(st.integers(0, 4)) == 0:
        values.flat[draw(st.integers(0, values.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf])
        )
    if values.size and draw(st.integers(0, 6)) == 0:
        values[:] = 0.0
    data = values.tobytes()
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # a torn byte string
    return pb.Vectors(data=data, dim=dim, count=count)


def plausible(draw: st.DrawFn, msg: Message) -> Message:
    """Make `msg` look like real traffic against collection "c" (dim 4), field by field.

    Each field is fixed up or left random at random, so some requests are fully valid
    (reaching the engine's success paths) and others are valid but for one field.
    """
    fields = msg.DESCRIPTOR.fields_by_name

    def fix(name: str) -> bool:
        field = fields.get(name)
        if field is None or _KINDS.get(name) not in (field.type, _message_name(field)):
            return False
        return draw(st.integers(0, 4)) > 0

    if fix("collection"):
        msg.collection = COLLECTION  # type: ignore[attr-defined]
    if fix("model"):
        msg.model = ""  # type: ignore[attr-defined]
    for name in ("vectors", "queries", "query", "probe_vectors"):
        if fix(name):
            getattr(msg, name).CopyFrom(_vectors(draw, single=name == "query"))
    vectors = getattr(msg, "vectors", None)
    count = vectors.count if isinstance(vectors, pb.Vectors) else draw(st.integers(0, 4))
    if fix("ids"):
        del msg.ids[:]  # type: ignore[attr-defined]
        for _ in range(count):
            pid = draw(st.one_of(st.integers(0, 50), st.sampled_from(["a", "b", "é", "x" * 510])))
            msg.ids.append(  # type: ignore[attr-defined]
                pb.PointId(**({"num": pid} if isinstance(pid, int) else {"str": pid}))
            )
    if fix("attributes"):
        del msg.attributes[:]  # type: ignore[attr-defined]
        if draw(st.booleans()):
            for _ in range(count):
                msg.attributes.append(draw(attributes))  # type: ignore[attr-defined]
    if fix("params"):
        msg.params.CopyFrom(pb.SearchParams(  # type: ignore[attr-defined]
            k=draw(st.sampled_from([1, 3, 10, 0, 10_000, 10_001])),
            ef=draw(st.sampled_from([0, 0, 16, 4096, 4097])),
            exact=draw(st.booleans()), with_attributes=draw(st.booleans()),
            with_vectors=draw(st.booleans()), explain=draw(st.booleans()),
        ))
    if fix("filter"):
        msg.filter.CopyFrom(pb.Filter(expr=draw(st.sampled_from(EXPRESSIONS))))  # type: ignore[attr-defined]
    if fix("filters"):
        del msg.filters[:]  # type: ignore[attr-defined]
        for _ in range(draw(st.sampled_from([0, 1, count]))):
            msg.filters.append(pb.Filter(expr=draw(st.sampled_from(EXPRESSIONS))))  # type: ignore[attr-defined]
    if fix("limit"):
        msg.limit = draw(st.sampled_from([0, 1, 5, 10_000, 10_001]))  # type: ignore[attr-defined]
    if fix("cursor"):
        msg.cursor = draw(st.sampled_from([b"", b"\0" * 8, b"\xff" * 8, b"\x01"]))  # type: ignore[attr-defined]
    return msg


_S, _B, _U = _d.FieldDescriptor.TYPE_STRING, _d.FieldDescriptor.TYPE_BYTES, _d.FieldDescriptor.TYPE_UINT32
_KINDS: dict[str, Any] = {
    "collection": _S, "model": _S, "cursor": _B, "limit": _U, "vectors": "Vectors",
    "queries": "Vectors", "query": "Vectors", "probe_vectors": "Vectors", "ids": "PointId",
    "attributes": "Attributes", "params": "SearchParams", "filter": "Filter", "filters": "Filter",
}


def _message_name(field: _d.FieldDescriptor) -> str | None:
    return field.message_type.name if field.message_type is not None else None


def _attr_value(value: Any) -> pb.AttrValue:
    return values.encode_value(value)


attributes = st.dictionaries(
    st.sampled_from(["g", "n", "tags", "d", "free", "x/y", "é"]),
    st.one_of(
        st.sampled_from(["x", "y", "", "k" * 241, 1, 2, -1, 2**63 - 1, 1.5, True, None]),
        st.lists(st.sampled_from(["rag", "llm", "", 3]), max_size=4),
        st.datetimes(timezones=st.just(UTC)),
    ),
    max_size=4,
).map(lambda d: pb.Attributes(fields={k: _attr_value(v) for k, v in d.items()}))


EXPRESSIONS = [
    'g == "x"', "n >= 2 and n < 5", '"rag" in tags', "not (n == 1)", "id in [1, 2, \"a\"]",
    "count(tags) >= 1", "tags is empty", "n between 1 and 3", "g != \"y\" or n > 1",
    "at_least(2, n == 1, n == 2, g == \"x\")", "d >= datetime(\"2020-01-01\")", "n == 1.5",
]
