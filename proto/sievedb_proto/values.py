"""Python attribute values ⇄ `sievedb.v1.AttrValue`: the one codec, shared by client and server.

Wire rules: ``None`` ⇄ ``null_value``; bool, signed 64-bit int, float, str as themselves;
datetimes ⇄ microseconds since the Unix epoch (naive datetimes are taken as UTC, decoded ones
are aware UTC); lists/tuples (and numpy arrays) ⇄ ``list_value``, nested at most
`MAX_DEPTH` levels. Numpy scalars are accepted. Problems raise `ValueError`; each side wraps
it in its own error type (client: InvalidArgument, server: InvalidAttributes).
"""

from __future__ import annotations

import numbers
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from sievedb_proto.v1 import sievedb_pb2 as pb

__all__ = ["MAX_DEPTH", "datetime_to_micros", "decode_value", "encode_value"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 8


def datetime_to_micros(value: datetime) -> int:
    """Exact microseconds since the epoch (integer arithmetic; naive = UTC)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    delta = aware - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def encode_value(value: Any, _depth: int = 0) -> pb.AttrValue:
    """A Python value → ``AttrValue``; `ValueError` for unsupported values."""
    if value is None:
        return pb.AttrValue(null_value=True)
    if isinstance(value, bool | np.bool_):
        return pb.AttrValue(bool_value=bool(value))
    if isinstance(value, numbers.Integral):
        number = int(value)
        if not I64_MIN <= number <= I64_MAX:
            raise ValueError(f"integer {number} is outside the signed 64-bit range")
        return pb.AttrValue(int_value=number)
    if isinstance(value, numbers.Real):
        return pb.AttrValue(float_value=float(value))
    if isinstance(value, str):
        return pb.AttrValue(string_value=value)
    if isinstance(value, datetime):
        return pb.AttrValue(datetime_value=datetime_to_micros(value))
    if isinstance(value, list | tuple | np.ndarray):
        if _depth >= MAX_DEPTH:
            raise ValueError(f"lists are nested deeper than {MAX_DEPTH} levels")
        return pb.AttrValue(
            list_value=pb.ListValue(values=[encode_value(v, _depth + 1) for v in value])
        )
    raise ValueError(f"unsupported attribute value of type {type(value).__name__}")


def decode_value(msg: pb.AttrValue, _depth: int = 0) -> Any:
    """``AttrValue`` → None | bool | int | float | str | datetime (aware UTC) | list."""
    kind = msg.WhichOneof("kind")
    if kind is None:
        raise ValueError("attribute value has no kind set")
    if kind == "null_value":
        return None
    if kind == "datetime_value":
        try:
            return EPOCH + timedelta(microseconds=msg.datetime_value)
        except OverflowError:
            raise ValueError(
                f"datetime {msg.datetime_value} µs is outside the supported range"
            ) from None
    if kind == "list_value":
        if _depth >= MAX_DEPTH:
            raise ValueError(f"lists are nested deeper than {MAX_DEPTH} levels")
        return [decode_value(v, _depth + 1) for v in msg.list_value.values]
    return getattr(msg, kind)
