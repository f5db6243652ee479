"""Typed client exceptions mirroring the server's error tree.

Every failed call raises a `SieveDBError` subclass keeping the gRPC status `.code`, the
server's `.message`, its stable `.reason` (from the `sievedb-reason` trailer) and the
`.request_id` (from `sievedb-request-id`; quote it when reporting a problem). The class is
chosen by reason first, then by status code (errors that never reached sievedb's code, such
as a refused connection or an oversized message, carry only a status code).

    SieveDBError
    ├── InvalidArgument          INVALID_ARGUMENT, OUT_OF_RANGE
    │   ├── InvalidVector
    │   └── InvalidFilter
    ├── FailedPrecondition       FAILED_PRECONDITION
    │   ├── DimensionMismatch
    │   ├── ModelMismatch
    │   └── IncompatibleModel
    ├── NotFound                 NOT_FOUND
    │   ├── CollectionNotFound
    │   ├── PointNotFound
    │   └── ModelNotFound
    ├── AlreadyExists            ALREADY_EXISTS
    ├── ResourceExhausted        RESOURCE_EXHAUSTED
    ├── Unauthenticated          UNAUTHENTICATED
    ├── PermissionDenied         PERMISSION_DENIED
    ├── Unavailable              UNAVAILABLE
    ├── DeadlineExceeded         DEADLINE_EXCEEDED
    ├── Cancelled                CANCELLED
    ├── DataLoss                 DATA_LOSS
    └── InternalError            INTERNAL, UNKNOWN
"""

from __future__ import annotations

from typing import Any

import grpc

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "CollectionNotFound",
    "DataLoss",
    "DeadlineExceeded",
    "DimensionMismatch",
    "FailedPrecondition",
    "IncompatibleModel",
    "InternalError",
    "InvalidArgument",
    "InvalidFilter",
    "InvalidVector",
    "ModelMismatch",
    "ModelNotFound",
    "NotFound",
    "PermissionDenied",
    "PointNotFound",
    "ResourceExhausted",
    "SieveDBError",
    "Unauthenticated",
    "Unavailable",
    "error_class_for",
    "from_rpc_error",
]

REQUEST_ID_KEY = "sievedb-request-id"
REASON_KEY = "sievedb-reason"


class SieveDBError(Exception):
    """Base of every error the client raises for a failed call."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        reason: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason or code.name
        self.request_id = request_id

    def __str__(self) -> str:
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.reason}: {self.message}{suffix}"


class InvalidArgument(SieveDBError):
    pass


class InvalidVector(InvalidArgument):
    pass


class InvalidFilter(InvalidArgument):
    pass


class FailedPrecondition(SieveDBError):
    pass


class DimensionMismatch(FailedPrecondition):
    pass


class ModelMismatch(FailedPrecondition):
    pass


class IncompatibleModel(FailedPrecondition):
    pass


class NotFound(SieveDBError):
    pass


class CollectionNotFound(NotFound):
    pass


class PointNotFound(NotFound):
    pass


class ModelNotFound(NotFound):
    pass


class AlreadyExists(SieveDBError):
    pass


class ResourceExhausted(SieveDBError):
    pass


class Unauthenticated(SieveDBError):
    pass


class PermissionDenied(SieveDBError):
    pass


class Unavailable(SieveDBError):
    pass


class DeadlineExceeded(SieveDBError):
    pass


class Cancelled(SieveDBError):
    pass


class DataLoss(SieveDBError):
    pass


class InternalError(SieveDBError):
    pass


_BY_REASON: dict[str, type[SieveDBError]] = {
    "INVALID_VECTOR": InvalidVector,
    "INVALID_FILTER": InvalidFilter,
    "DIMENSION_MISMATCH": DimensionMismatch,
    "MODEL_MISMATCH": ModelMismatch,
    "INCOMPATIBLE_MODEL": IncompatibleModel,
    "COLLECTION_NOT_FOUND": CollectionNotFound,
    "POINT_NOT_FOUND": PointNotFound,
    "MODEL_NOT_FOUND": ModelNotFound,
}

_BY_CODE: dict[grpc.StatusCode, type[SieveDBError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
}


def error_class_for(code: grpc.StatusCode, reason: str = "") -> type[SieveDBError]:
    """Reason first (the most specific), then the status code, then the base class.

    A reason only wins when its class agrees with the status code family, so a confused
    server cannot turn, say, an UNAVAILABLE into a NotFound.
    """
    by_code = _BY_CODE.get(code, SieveDBError)
    by_reason = _BY_REASON.get(reason)
    if by_reason is not None and issubclass(by_reason, by_code):
        return by_reason
    return by_code


def _metadata_value(metadata: Any, key: str) -> str | None:
    for item in metadata or ():
        k, v = item
        if k == key:
            return v.decode() if isinstance(v, bytes) else str(v)
    return None


def from_rpc_error(exc: grpc.RpcError) -> SieveDBError:
    """Translate a `grpc.RpcError` raised by a stub call into a typed `SieveDBError`."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else None
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    code = code or grpc.StatusCode.UNKNOWN
    reason = _metadata_value(trailing, REASON_KEY) or ""
    request_id = _metadata_value(trailing, REQUEST_ID_KEY)
    cls = error_class_for(code, reason)
    return cls(details or code.name.lower(), code=code, reason=reason, request_id=request_id)
