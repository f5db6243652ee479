"""The server interceptor: request ids, access logging, shutdown gating and error mapping.

Every call gets a request id: the client's `x-request-id` metadata when it is a sane token,
otherwise a fresh uuid4 hex. The id is returned in the `sievedb-request-id` trailing metadata
of every call, bound to `current_request_id()` while the handler runs, and written in the
access log line (`logging`, logger `sievedb.access`, with `extra=` fields for structured
handlers).

Error mapping happens HERE and nowhere else: servicers raise domain errors
(`sievedb_server.errors`), this interceptor turns them into a status via `status.status_for`,
adds `sievedb-reason` to the trailing metadata and aborts the call. Unexpected exceptions are
logged with their traceback and reach the client only as "internal error (request id ...)".

While the `ShutdownGate` is closed, new calls to the sievedb service fail fast with
UNAVAILABLE / SHUTTING_DOWN (health and reflection keep answering, so probes see NOT_SERVING).

While a handler runs, the call's deadline and cancellation are bound for core code
(`core.deadline.checkpoint`). Request bytes that do not decode as the method's message are
INVALID_ARGUMENT (grpcio itself would answer INTERNAL "Exception deserializing request!").
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from sievedb_server.core import deadline
from sievedb_server.errors import Cancelled, DeadlineExceeded, InvalidArgument, ShuttingDown
from sievedb_server.transport.status import status_for

__all__ = [
    "REASON_KEY",
    "REQUEST_ID_KEY",
    "REQUEST_ID_REQUEST_KEY",
    "RequestInterceptor",
    "ShutdownGate",
    "current_request_id",
]

REQUEST_ID_REQUEST_KEY = "x-request-id"
REQUEST_ID_KEY = "sievedb-request-id"
REASON_KEY = "sievedb-reason"
GATED_PREFIX = "/sievedb.v1.SieveDB/"

_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("sievedb_request_id", default="")
access_log = logging.getLogger("sievedb.access")
error_log = logging.getLogger("sievedb.errors")


def current_request_id() -> str:
    """The request id of the call being served on this thread ("" outside a call)."""
    return _request_id.get()


class ShutdownGate:
    """A flag shared by the server and its interceptor: closed = refuse new sievedb calls."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()


def _request_id_from(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_REQUEST_KEY and isinstance(value, str):
            if _REQUEST_ID_RE.fullmatch(value):
                return value
            break
    return uuid.uuid4().hex


class _CallScope:
    """Book-keeping for one call: request id, timing, the final status and the log line."""

    def __init__(self, method: str, request_id: str, gate: ShutdownGate | None) -> None:
        self.method = method
        self.request_id = request_id
        self.gate = gate if method.startswith(GATED_PREFIX) else None
        self.start_ns = time.perf_counter_ns()

    def enter(self, context: grpc.ServicerContext) -> contextvars.Token[str]:
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))
        if self.gate is not None and self.gate.closed:
            raise ShuttingDown("the server is shutting down; retry on another replica")
        return _request_id.set(self.request_id)

    def fail(self, exc: BaseException, context: grpc.ServicerContext) -> None:
        """Abort the call with the mapped status (raises, as `context.abort` does)."""
        if _already_aborted(context):
            self.log("ABORTED", level=logging.INFO)
            raise exc
        if isinstance(exc, grpc.RpcError) and not context.is_active():
            # The request stream of a call the client cancelled (or whose deadline passed)
            # raises a bare RpcError: that is the client leaving, not a server bug.
            exc = _gone(context)
        mapped = status_for(exc, self.request_id)
        if mapped.expected:
            self.log(mapped.code.name, reason=mapped.reason)
        else:
            error_log.error(
                "unexpected error in %s (request id %s)",
                self.method,
                self.request_id,
                exc_info=exc,
                extra={"request_id": self.request_id, "method": self.method},
            )
            self.log(mapped.code.name, reason=mapped.reason, level=logging.ERROR)
        context.set_trailing_metadata(
            ((REQUEST_ID_KEY, self.request_id), (REASON_KEY, mapped.reason))
        )
        context.abort(mapped.code, mapped.message)

    def log(self, status: str, *, reason: str = "", level: int = logging.INFO) -> None:
        duration_ms = (time.perf_counter_ns() - self.start_ns) / 1e6
        access_log.log(
            level,
            "%s %s %.3fms request_id=%s%s",
            self.method,
            status,
            duration_ms,
            self.request_id,
            f" reason={reason}" if reason else "",
            extra={
                "request_id": self.request_id,
                "method": self.method,
                "status": status,
                "reason": reason,
                "duration_ms": duration_ms,
            },
        )


def _gone(context: grpc.ServicerContext) -> Exception:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return DeadlineExceeded("the deadline passed while the server read the request stream")
    return Cancelled("the client cancelled the call")


def _already_aborted(context: grpc.ServicerContext) -> bool:
    """True when the handler itself called `context.abort` (its bare Exception is in flight)."""
    try:
        code = context.code()  # type: ignore[attr-defined]
    except (AttributeError, NotImplementedError):
        return False
    return code is not None and code is not grpc.StatusCode.OK


class _Undecodable:
    """What a tolerant deserializer returns for bytes that are not a valid message."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError, invalid UTF-8 in a string, ...
            return _Undecodable(exc)

    return deserialize


def _decoded(request: Any, streaming: bool) -> Any:
    """The request (or request iterator), raising INVALID_ARGUMENT for undecodable bytes."""
    if not streaming:
        if isinstance(request, _Undecodable):
            raise InvalidArgument(f"the request is not a valid message: {request.error}")
        return request

    def checked() -> Iterator[Any]:
        for item in request:
            if isinstance(item, _Undecodable):
                raise InvalidArgument(f"a stream message is not a valid message: {item.error}")
            yield item

    return checked()


def _budget(context: grpc.ServicerContext) -> deadline.CallBudget:
    return deadline.CallBudget(context.time_remaining, context.is_active)


def _wrap_unary(
    behavior: Callable[..., Any], method: str, gate: ShutdownGate | None, streaming: bool = False
) -> Any:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        scope = _CallScope(method, _request_id_from(context.invocation_metadata()), gate)
        token = None
        try:
            token = scope.enter(context)
            with deadline.bind(_budget(context)):
                response = behavior(_decoded(request, streaming), context)
        except Exception as exc:  # every failure is mapped in one place
            scope.fail(exc, context)
            raise  # unreachable: fail() always raises
        finally:
            if token is not None:
                _request_id.reset(token)
        scope.log("OK")
        return response

    return wrapped


def _wrap_stream(
    behavior: Callable[..., Any], method: str, gate: ShutdownGate | None, streaming: bool = False
) -> Any:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        scope = _CallScope(method, _request_id_from(context.invocation_metadata()), gate)
        try:
            token = scope.enter(context)
            try:
                with deadline.bind(_budget(context)):
                    yield from behavior(_decoded(request, streaming), context)
            finally:
                _request_id.reset(token)
        except Exception as exc:  # every failure is mapped in one place
            scope.fail(exc, context)
            raise
        scope.log("OK")

    return wrapped


class RequestInterceptor(grpc.ServerInterceptor):
    """Wraps every handler with request-id, logging, gating and error mapping."""

    def __init__(self, gate: ShutdownGate | None = None) -> None:
        self.gate = gate

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        kwargs = {
            "request_deserializer": _tolerant(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method, self.gate), **kwargs
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method, self.gate), **kwargs
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method, self.gate, streaming=True), **kwargs
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream(handler.stream_stream, method, self.gate, streaming=True), **kwargs
            )
        return handler
