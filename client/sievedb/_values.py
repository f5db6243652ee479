"""The shared attribute value codec (`sievedb_proto.values`) with client-side errors."""

from __future__ import annotations

from typing import Any

import grpc
from sievedb_proto import values as _codec
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_proto.values import datetime_to_micros

from sievedb.errors import InvalidArgument

__all__ = ["datetime_to_micros", "decode_value", "encode_value"]


def _bad(exc: ValueError) -> InvalidArgument:
    return InvalidArgument(str(exc), code=grpc.StatusCode.INVALID_ARGUMENT,
                           reason="INVALID_ATTRIBUTES")


def encode_value(value: Any) -> pb.AttrValue:
    """A Python value → ``AttrValue``; raises `InvalidArgument` for unsupported values."""
    try:
        return _codec.encode_value(value)
    except ValueError as exc:
        raise _bad(exc) from None


def decode_value(msg: pb.AttrValue) -> Any:
    """``AttrValue`` → None | bool | int | float | str | datetime (aware UTC) | list."""
    try:
        return _codec.decode_value(msg)
    except ValueError as exc:
        raise _bad(exc) from None
