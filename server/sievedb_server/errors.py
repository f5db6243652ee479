"""The one domain exception tree of the sievedb server.

Core code raises these; `transport/status.py` maps each class to a gRPC status (one table),
and the client maps status + reason back to typed exceptions. Every class has a stable
`reason` string that travels in the `sievedb-reason` trailing metadata.

    SieveError                       (reason INTERNAL)
    ├── InvalidArgument              INVALID_ARGUMENT
    │   ├── InvalidVector            NaN/Inf/empty vector, wrong byte length
    │   ├── InvalidFilter            malformed filter or expression
    │   ├── InvalidName              collection name outside [A-Za-z0-9_-]{1,64}
    │   ├── InvalidAttributes        attribute value of an unknown or mismatched type
    │   └── InvalidSnapshot          not a sievedb snapshot archive (unsafe member, unknown format)
    ├── FailedPrecondition           FAILED_PRECONDITION
    │   ├── DimensionMismatch
    │   ├── ModelMismatch
    │   └── IncompatibleModel
    ├── NotFound                     NOT_FOUND
    │   ├── CollectionNotFound
    │   ├── PointNotFound
    │   ├── ModelNotFound
    │   └── SnapshotNotFound
    ├── AlreadyExists                ALREADY_EXISTS
    │   └── CollectionExists
    ├── ResourceExhausted            RESOURCE_EXHAUSTED
    │   ├── StoreFull
    │   ├── RequestTooLarge
    │   └── TooManyResults
    ├── Unauthenticated              UNAUTHENTICATED
    ├── PermissionDenied             PERMISSION_DENIED
    ├── Unavailable                  UNAVAILABLE
    │   └── ShuttingDown
    ├── DeadlineExceeded             DEADLINE_EXCEEDED  the caller's deadline passed mid-work
    │   └── StreamIdle                   a client stream sent nothing for too long
    ├── Cancelled                    CANCELLED          the caller went away mid-work
    ├── DataLoss                     DATA_LOSS
    │   ├── CorruptData
    │   └── CorruptSnapshot          archive bytes disagree with their checksum or manifest
    └── InternalError                INTERNAL
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "CollectionExists",
    "CollectionNotFound",
    "CorruptData",
    "CorruptSnapshot",
    "DataLoss",
    "DeadlineExceeded",
    "DimensionMismatch",
    "FailedPrecondition",
    "IncompatibleModel",
    "InternalError",
    "InvalidArgument",
    "InvalidAttributes",
    "InvalidFilter",
    "InvalidName",
    "InvalidSnapshot",
    "InvalidVector",
    "ModelMismatch",
    "ModelNotFound",
    "NotFound",
    "PermissionDenied",
    "PointNotFound",
    "RequestTooLarge",
    "ResourceExhausted",
    "ShuttingDown",
    "SieveError",
    "SnapshotNotFound",
    "StoreFull",
    "StreamIdle",
    "TooManyResults",
    "Unauthenticated",
    "Unavailable",
]


class SieveError(Exception):
    """Base of every error the server reports to a client on purpose."""

    reason = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(SieveError):
    reason = "INVALID_ARGUMENT"


class InvalidVector(InvalidArgument):
    reason = "INVALID_VECTOR"


class InvalidFilter(InvalidArgument):
    reason = "INVALID_FILTER"


class InvalidName(InvalidArgument):
    reason = "INVALID_NAME"


class InvalidAttributes(InvalidArgument):
    reason = "INVALID_ATTRIBUTES"


class InvalidSnapshot(InvalidArgument):
    reason = "INVALID_SNAPSHOT"


class FailedPrecondition(SieveError):
    reason = "FAILED_PRECONDITION"


class DimensionMismatch(FailedPrecondition):
    reason = "DIMENSION_MISMATCH"


class ModelMismatch(FailedPrecondition):
    reason = "MODEL_MISMATCH"


class IncompatibleModel(FailedPrecondition):
    reason = "INCOMPATIBLE_MODEL"


class NotFound(SieveError):
    reason = "NOT_FOUND"


class CollectionNotFound(NotFound):
    reason = "COLLECTION_NOT_FOUND"


class PointNotFound(NotFound):
    reason = "POINT_NOT_FOUND"


class ModelNotFound(NotFound):
    reason = "MODEL_NOT_FOUND"


class SnapshotNotFound(NotFound):
    reason = "SNAPSHOT_NOT_FOUND"


class AlreadyExists(SieveError):
    reason = "ALREADY_EXISTS"


class CollectionExists(AlreadyExists):
    reason = "COLLECTION_EXISTS"


class ResourceExhausted(SieveError):
    reason = "RESOURCE_EXHAUSTED"


class StoreFull(ResourceExhausted):
    reason = "STORE_FULL"


class RequestTooLarge(ResourceExhausted):
    reason = "REQUEST_TOO_LARGE"


class TooManyResults(ResourceExhausted):
    reason = "TOO_MANY_RESULTS"


class Unauthenticated(SieveError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(SieveError):
    reason = "PERMISSION_DENIED"


class Unavailable(SieveError):
    reason = "UNAVAILABLE"


class ShuttingDown(Unavailable):
    reason = "SHUTTING_DOWN"


class DeadlineExceeded(SieveError):
    reason = "DEADLINE_EXCEEDED"


class StreamIdle(DeadlineExceeded):
    reason = "STREAM_IDLE"


class Cancelled(SieveError):
    reason = "CANCELLED"


class DataLoss(SieveError):
    reason = "DATA_LOSS"


class CorruptData(DataLoss):
    reason = "CORRUPT_DATA"


class CorruptSnapshot(DataLoss):
    reason = "CORRUPT_SNAPSHOT"


class InternalError(SieveError):
    reason = "INTERNAL"
