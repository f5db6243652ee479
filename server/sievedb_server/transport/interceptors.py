"""The server interceptor: request ids, access logging, metrics, shutdown gating, error mapping.

Every call gets a request id: the client's `x-request-id` metadata when it is a sane token,
otherwise a fresh uuid4 hex. The id is returned in the `sievedb-request-id` trailing metadata
of every call, bound to `current_request_id()` while the handler runs, and written in the
access log line.

Access log: exactly one line per call (logger `sievedb.access`), written when the call ends
whatever the outcome (OK, an error, a handler's own abort, a client cancelling a stream).
Its `extra=` fields are what structured handlers (`sievedb_server.logs`, `--log-format json`)
print: `request_id`, `method`, `status` (gRPC code name), `reason`, `duration_ms`, `peer` and,
for unary calls, `collection`. Invocation metadata is never logged, so neither is the
`authorization` header.

With `metrics` (a `transport.metrics.ServerMetrics`) the same end-of-call point updates the
per-RPC counters, latency histograms and the in-flight gauge.

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
from typing import TYPE_CHECKING, Any

import grpc

from sievedb_server.core import deadline
from sievedb_server.errors import Cancelled, DeadlineExceeded, InvalidArgument, ShuttingDown
from sievedb_server.transport.status import status_for

if TYPE_CHECKING:
    from sievedb_server.transport.metrics import ServerMetrics

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
_PLAIN_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
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


def _collection_of(request: Any) -> str:
    """The collection a unary request names, for the log ("" when it names none).

    A name that is not a plain token (it will be refused anyway) is logged quoted, so control
    characters cannot forge log lines.
    """
    name = getattr(request, "collection", None)
    if not isinstance(name, str):
        kind = type(request).__name__
        if kind in ("DescribeCollectionRequest", "DropCollectionRequest"):
            name = request.name
        elif kind == "CreateCollectionRequest":
            name = request.spec.name
        else:
            return ""
    if not name or _PLAIN_NAME_RE.fullmatch(name):
        return name
    return repr(name[:64])


def _peer_of(context: grpc.ServicerContext) -> str:
    try:
        return str(context.peer())
    except (AttributeError, NotImplementedError):  # test doubles may have no peer
        return ""


class _CallScope:
    """Book-keeping for one call: request id, timing, metrics, the final status and log line."""

    def __init__(
        self,
        method: str,
        context: grpc.ServicerContext,
        gate: ShutdownGate | None,
        metrics: ServerMetrics | None,
    ) -> None:
        self.method = method
        self.request_id = _request_id_from(context.invocation_metadata())
        self.gate = gate if method.startswith(GATED_PREFIX) else None
        self.metrics = metrics
        self.peer = _peer_of(context)
        self.collection = ""
        self.finished = False
        self.start_ns = time.perf_counter_ns()
        if metrics is not None:
            metrics.call_started(method)

    def enter(self, context: grpc.ServicerContext) -> contextvars.Token[str]:
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))
        if self.gate is not None and self.gate.closed:
            raise ShuttingDown("the server is shutting down; retry on another replica")
        return _request_id.set(self.request_id)

    def fail(self, exc: BaseException, context: grpc.ServicerContext) -> None:
        """Abort the call with the mapped status (raises, as `context.abort` does)."""
        aborted = _aborted_code(context)
        if aborted is not None:
            self.finish(aborted.name)
            raise exc
        if isinstance(exc, grpc.RpcError) and not context.is_active():
            # The request stream of a call the client cancelled (or whose deadline passed)
            # raises a bare RpcError: that is the client leaving, not a server bug.
            exc = _gone(context)
        mapped = status_for(exc, self.request_id)
        if mapped.expected:
            self.finish(mapped.code.name, reason=mapped.reason)
        else:
            error_log.error(
                "unexpected error in %s (request id %s)",
                self.method,
                self.request_id,
                exc_info=exc,
                extra={"request_id": self.request_id, "method": self.method},
            )
            self.finish(mapped.code.name, reason=mapped.reason, level=logging.ERROR)
        context.set_trailing_metadata(
            ((REQUEST_ID_KEY, self.request_id), (REASON_KEY, mapped.reason))
        )
        context.abort(mapped.code, mapped.message)

    def finish_ok_or_gone(
        self, context: grpc.ServicerContext, *, client_streamed: bool = False
    ) -> None:
        """The handler returned: OK, unless the client left first (its request stream can end
        quietly when it cancels, and the handler then completes a call nobody receives).

        For a client-streaming call the cancel can reach the server just after the request
        stream ended, while the call still looks active; such a call is recorded when it
        terminates, when grpc knows whether the client cancelled it.
        """
        if not context.is_active():
            self.finish(_status_name(_gone(context)))
        elif not client_streamed:
            self.finish("OK")
        elif not context.add_callback(lambda: self._finish_terminated(context)):
            self._finish_terminated(context)  # already terminated: no callback will run

    def _finish_terminated(self, context: grpc.ServicerContext) -> None:
        # grpcio's sync server marks a call its client cancelled with state.client ==
        # "cancelled" before running termination callbacks; there is no public accessor.
        state = getattr(context, "_state", None)
        cancelled = getattr(state, "client", None) == "cancelled"
        self.finish(_status_name(_gone(context)) if cancelled else "OK")

    def finish(self, status: str, *, reason: str = "", level: int = logging.INFO) -> None:
        """Record the call's outcome once: metrics, then the access log line."""
        if self.finished:
            return
        self.finished = True
        elapsed_ns = time.perf_counter_ns() - self.start_ns
        if self.metrics is not None:
            self.metrics.call_finished(self.method, status, elapsed_ns / 1e9)
        duration_ms = elapsed_ns / 1e6
        if not access_log.isEnabledFor(level):
            return
        access_log.log(
            level,
            "%s %s %.3fms request_id=%s peer=%s%s%s",
            self.method,
            status,
            duration_ms,
            self.request_id,
            self.peer or "-",
            f" collection={self.collection}" if self.collection else "",
            f" reason={reason}" if reason else "",
            extra={
                "request_id": self.request_id,
                "method": self.method,
                "status": status,
                "reason": reason,
                "duration_ms": round(duration_ms, 3),
                "peer": self.peer,
                "collection": self.collection,
            },
        )


def _gone(context: grpc.ServicerContext) -> Exception:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return DeadlineExceeded("the deadline passed while the server read the request stream")
    return Cancelled("the client cancelled the call")


def _status_name(exc: Exception) -> str:
    return "DEADLINE_EXCEEDED" if isinstance(exc, DeadlineExceeded) else "CANCELLED"


def _aborted_code(context: grpc.ServicerContext) -> grpc.StatusCode | None:
    """The code the handler itself aborted with (`context.abort`), or None."""
    try:
        code = context.code()  # type: ignore[attr-defined]
    except (AttributeError, NotImplementedError):
        return None
    return code if code is not None and code is not grpc.StatusCode.OK else None


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
    behavior: Callable[..., Any],
    method: str,
    gate: ShutdownGate | None,
    metrics: ServerMetrics | None,
    *,
    streaming: bool = False,
) -> Any:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        scope = _CallScope(method, context, gate, metrics)
        if not streaming:
            scope.collection = _collection_of(request)
        token = None
        try:
            token = scope.enter(context)
            with deadline.bind(_budget(context)):
                response = behavior(_decoded(request, streaming), context)
        except Exception as exc:  # every failure is mapped in one place
            scope.fail(exc, context)
            raise  # unreachable: fail() always raises
        except BaseException:  # not a failure of the call (e.g. SystemExit): still account it
            scope.finish("UNKNOWN", level=logging.WARNING)
            raise
        finally:
            if token is not None:
                _request_id.reset(token)
        scope.finish_ok_or_gone(context, client_streamed=streaming)
        return response

    return wrapped


def _wrap_stream(
    behavior: Callable[..., Any],
    method: str,
    gate: ShutdownGate | None,
    metrics: ServerMetrics | None,
    *,
    streaming: bool = False,
) -> Any:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        scope = _CallScope(method, context, gate, metrics)
        if not streaming:
            scope.collection = _collection_of(request)
        token = None
        try:
            token = scope.enter(context)
            with deadline.bind(_budget(context)):
                yield from behavior(_decoded(request, streaming), context)
        except Exception as exc:  # every failure is mapped in one place
            scope.fail(exc, context)
            raise
        except BaseException:  # GeneratorExit: the client went away (cancel, deadline) mid-stream
            scope.finish("CANCELLED")
            raise
        finally:
            if token is not None:
                _request_id.reset(token)
        scope.finish_ok_or_gone(context, client_streamed=streaming)

    return wrapped


class RequestInterceptor(grpc.ServerInterceptor):
    """Wraps every handler with request-id, logging, metrics, gating and error mapping."""

    def __init__(
        self, gate: ShutdownGate | None = None, metrics: ServerMetrics | None = None
    ) -> None:
        self.gate = gate
        self.metrics = metrics

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
        gate, metrics = self.gate, self.metrics
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method, gate, metrics), **kwargs
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method, gate, metrics), **kwargs
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method, gate, metrics, streaming=True), **kwargs
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream(handler.stream_stream, method, gate, metrics, streaming=True),
                **kwargs,
            )
        return handler
