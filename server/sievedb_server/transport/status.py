"""THE status table: domain error class → gRPC status code (ARCHITECTURE.md §5).

This is the only place that decides which `grpc.StatusCode` a domain error becomes.
`status_for(exc)` walks the exception's MRO and returns the first class listed in
`STATUS_TABLE`, so a new subclass inherits its parent's status without touching this file.
Anything that is not a `SieveError` is a bug: it becomes INTERNAL with a generic message that
names the request id, and the client never sees the exception text (the interceptor logs the
traceback server-side).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import grpc

from sievedb_server import errors

__all__ = ["STATUS_TABLE", "MappedStatus", "internal_message", "status_for"]

STATUS_TABLE: Final[Mapping[type[errors.SieveError], grpc.StatusCode]] = MappingProxyType(
    {
        errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
        errors.NotFound: grpc.StatusCode.NOT_FOUND,
        errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
        errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
        errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
        errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
        errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
        errors.Cancelled: grpc.StatusCode.CANCELLED,
        errors.DataLoss: grpc.StatusCode.DATA_LOSS,
        errors.InternalError: grpc.StatusCode.INTERNAL,
        errors.SieveError: grpc.StatusCode.INTERNAL,
    }
)
"""Ordered from the most specific concern to the base; looked up along the MRO."""

INTERNAL_REASON: Final = errors.InternalError.reason


@dataclass(frozen=True)
class MappedStatus:
    """What a client is told about a failed call: status code, stable reason, safe message."""

    code: grpc.StatusCode
    reason: str
    message: str
    expected: bool  # False for bugs (non-SieveError): the caller logs the traceback


def internal_message(request_id: str) -> str:
    """The only text a client gets for an unexpected exception."""
    return f"internal error (request id {request_id})" if request_id else "internal error"


def status_for(exc: BaseException, request_id: str = "") -> MappedStatus:
    """Map an exception raised while serving a call to the status the client receives.

    Domain errors keep their own message and `reason`; everything else becomes INTERNAL with
    a generic message (never `repr(exc)`, which may leak paths, data or internals).
    """
    if isinstance(exc, errors.SieveError):
        for cls in type(exc).__mro__:
            code = STATUS_TABLE.get(cls)  # type: ignore[call-overload]
            if code is not None:
                message = exc.message
                if code is grpc.StatusCode.INTERNAL:
                    message = f"{message} (request id {request_id})" if request_id else message
                return MappedStatus(code, exc.reason, message, expected=True)
    return MappedStatus(
        grpc.StatusCode.INTERNAL, INTERNAL_REASON, internal_message(request_id), expected=False
    )
