"""The status table, row by row: server domain error → gRPC status, and the client's way back."""

from __future__ import annotations

import grpc
import pytest
from sievedb import errors as client_errors
from sievedb_server import errors as server_errors
from sievedb_server.transport.status import STATUS_TABLE, status_for

# ARCHITECTURE.md §5, restated independently of the implementation.
EXPECTED_ROWS: list[tuple[type[server_errors.SieveError], grpc.StatusCode]] = [
    (server_errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (server_errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (server_errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (server_errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (server_errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (server_errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (server_errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (server_errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (server_errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (server_errors.Cancelled, grpc.StatusCode.CANCELLED),
    (server_errors.DataLoss, grpc.StatusCode.DATA_LOSS),
    (server_errors.InternalError, grpc.StatusCode.INTERNAL),
    (server_errors.SieveError, grpc.StatusCode.INTERNAL),
]

ALL_SERVER_ERRORS = [getattr(server_errors, name) for name in server_errors.__all__]


def _expected_code(cls: type[server_errors.SieveError]) -> grpc.StatusCode:
    for row_cls, code in EXPECTED_ROWS:
        if issubclass(cls, row_cls):
            return code
    raise AssertionError(f"{cls} is not a SieveError")


def test_table_has_exactly_the_documented_rows() -> None:
    assert list(STATUS_TABLE.items()) == EXPECTED_ROWS


@pytest.mark.parametrize(("cls", "code"), EXPECTED_ROWS, ids=lambda v: getattr(v, "__name__", ""))
def test_row(cls: type[server_errors.SieveError], code: grpc.StatusCode) -> None:
    mapped = status_for(cls("boom"), "rid123")
    assert mapped.code is code
    assert mapped.reason == cls.reason
    assert mapped.expected
    assert mapped.message.startswith("boom")


@pytest.mark.parametrize("cls", ALL_SERVER_ERRORS, ids=lambda c: c.__name__)
def test_every_domain_class_maps_through_its_mro(cls: type[server_errors.SieveError]) -> None:
    mapped = status_for(cls("detail"))
    assert mapped.code is _expected_code(cls)
    assert mapped.reason == cls.reason


def test_reasons_are_unique_per_leaf() -> None:
    reasons = [c.reason for c in ALL_SERVER_ERRORS if c is not server_errors.InternalError]
    assert len(reasons) == len(set(reasons))


def test_subclass_defined_later_inherits_its_parents_status() -> None:
    class QuotaExceeded(server_errors.StoreFull):
        reason = "QUOTA_EXCEEDED"

    mapped = status_for(QuotaExceeded("over quota"))
    assert (mapped.code, mapped.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("secret /var/lib/x"), KeyError("k"), ValueError("v"), ZeroDivisionError()],
    ids=lambda e: type(e).__name__,
)
def test_unexpected_exceptions_are_internal_with_a_generic_message(exc: Exception) -> None:
    mapped = status_for(exc, "abc123")
    assert mapped.code is grpc.StatusCode.INTERNAL
    assert mapped.reason == "INTERNAL"
    assert not mapped.expected
    assert mapped.message == "internal error (request id abc123)"
    assert str(exc) not in mapped.message or not str(exc)


# --- the client's mapping back ---------------------------------------------------------------


def _nearest_client_class(cls: type) -> type[client_errors.SieveDBError]:
    """The client class named like `cls` or like its nearest ancestor that the client mirrors."""
    for ancestor in cls.__mro__:
        if ancestor is server_errors.SieveError:
            return client_errors.InternalError  # a bare SieveError travels as INTERNAL
        candidate = getattr(client_errors, ancestor.__name__, None)
        if isinstance(candidate, type) and issubclass(candidate, client_errors.SieveDBError):
            return candidate
    raise AssertionError(cls)


@pytest.mark.parametrize("cls", ALL_SERVER_ERRORS, ids=lambda c: c.__name__)
def test_client_maps_each_row_back(cls: type[server_errors.SieveError]) -> None:
    mapped = status_for(cls("detail"), "rid")
    client_cls = client_errors.error_class_for(mapped.code, mapped.reason)
    assert client_cls is _nearest_client_class(cls)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, client_errors.InvalidArgument),
        (grpc.StatusCode.FAILED_PRECONDITION, client_errors.FailedPrecondition),
        (grpc.StatusCode.NOT_FOUND, client_errors.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, client_errors.AlreadyExists),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, client_errors.ResourceExhausted),
        (grpc.StatusCode.UNAUTHENTICATED, client_errors.Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, client_errors.PermissionDenied),
        (grpc.StatusCode.UNAVAILABLE, client_errors.Unavailable),
        (grpc.StatusCode.DATA_LOSS, client_errors.DataLoss),
        (grpc.StatusCode.INTERNAL, client_errors.InternalError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, client_errors.DeadlineExceeded),
        (grpc.StatusCode.UNKNOWN, client_errors.InternalError),
        (grpc.StatusCode.CANCELLED, client_errors.Cancelled),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_client_maps_bare_status_codes(
    code: grpc.StatusCode, expected: type[client_errors.SieveDBError]
) -> None:
    assert client_errors.error_class_for(code) is expected


def test_reason_must_agree_with_the_status_family() -> None:
    # A NOT_FOUND-family reason on an UNAVAILABLE status does not make a NotFound.
    cls = client_errors.error_class_for(grpc.StatusCode.UNAVAILABLE, "COLLECTION_NOT_FOUND")
    assert cls is client_errors.Unavailable


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str, trailing: tuple) -> None:
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple:
        return self._trailing


def test_from_rpc_error_keeps_code_message_reason_and_request_id() -> None:
    exc = client_errors.from_rpc_error(
        _FakeRpcError(
            grpc.StatusCode.FAILED_PRECONDITION,
            "collection 'c' has dim 4",
            (("sievedb-request-id", "r-1"), ("sievedb-reason", "DIMENSION_MISMATCH")),
        )
    )
    assert isinstance(exc, client_errors.DimensionMismatch)
    assert isinstance(exc, client_errors.FailedPrecondition)
    assert exc.code is grpc.StatusCode.FAILED_PRECONDITION
    assert exc.message == "collection 'c' has dim 4"
    assert exc.reason == "DIMENSION_MISMATCH"
    assert exc.request_id == "r-1"
    assert str(exc) == "DIMENSION_MISMATCH: collection 'c' has dim 4 (request id r-1)"


def test_from_rpc_error_without_trailers_uses_the_code() -> None:
    exc = client_errors.from_rpc_error(
        _FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect", ())
    )
    assert type(exc) is client_errors.Unavailable
    assert exc.reason == "UNAVAILABLE"
    assert exc.request_id is None
