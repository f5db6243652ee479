"""Python attribute values ⇄ `sievedb.v1.AttrValue` for the client (private; one owner).

Same wire rules as the server: ``None`` ⇄ ``null_value``, datetimes ⇄ microseconds since the
Unix epoch (naive datetimes are taken as UTC; decoded ones are aware UTC), lists/tuples ⇄
``list_value``, integers must fit in signed 64 bits. Numpy scalars are accepted.
"""

from __future__ import annotations

import numbers
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import numpy as np
from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb.errors import InvalidArgument

__all__ = ["datetime_to_micros", "decode_value", "encode_value"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_MAX_DEPTH = 8


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(message, code=grpc.StatusCode.INVALID_ARGUMENT,
                           reason="INVALID_ATTRIBUTES")


def datetime_to_micros(value: datetime) -> int:
    """Exact microseconds since the epoch (integer arithmetic; naive = UTC)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def encode_value(value: Any, _depth: int = 0) -> pb.AttrValue:
    """A Python value → ``AttrValue``; raises `InvalidArgument` for unsupported values."""
    if value is None:
        return pb.AttrValue(null_value=True)
    if isinstance(value, bool | np.bool_):
        return pb.AttrValue(bool_value=bool(value))
    if isinstance(value, numbers.Integral):
        number = int(value)
        if not _I64_MIN <= number <= _I64_MAX:
            raise _bad(f"integer {number} is outside the signed 64-bit range")
        return pb.AttrValue(int_value=number)
    if isinstance(value, numbers.Real):
        return pb.AttrValue(float_value=float(value))
    if isinstance(value, str):
        return pb.AttrValue(string_value=value)
    if isinstance(value, datetime):
        return pb.AttrValue(datetime_value=datetime_to_micros(value))
    if isinstance(value, list | tuple | np.ndarray):
        if _depth >= _MAX_DEPTH:
            raise _bad(f"lists are nested deeper than {_MAX_DEPTH} levels")
        return pb.AttrValue(
            list_value=pb.ListValue(values=[encode_value(v, _depth + 1) for v in value])
        )
    raise _bad(f"unsupported attribute value of type {type(value).__name__}")


def decode_value(msg: pb.AttrValue) -> Any:
    """``AttrValue`` → None | bool | int | float | str | datetime (aware UTC) | list."""
    kind = msg.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "datetime_value":
        try:
            return _EPOCH + timedelta(microseconds=msg.datetime_value)
        except OverflowError:
            raise _bad(f"datetime {msg.datetime_value} µs is out of range") from None
    if kind == "list_value":
        return [decode_value(v) for v in msg.list_value.values]
    return getattr(msg, kind)
