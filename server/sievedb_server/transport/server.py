"""Build and run the sievedb gRPC server.

`create_server(address, data_dir)` returns `(server, port)` with the server bound but not
started (bind port 0 in tests and read the real port). Besides `sievedb.v1.SieveDB` it serves
the standard `grpc.health.v1` health service (SERVING for "" and "sievedb.v1.SieveDB") and
server reflection, so `grpcurl` and orchestrator probes work.

The returned object is a `SieveServer`: a `grpc.Server` that also knows the graceful shutdown
sequence (`shutdown(grace)`):

1. health → NOT_SERVING (load balancers stop routing here),
2. new sievedb calls fail fast with UNAVAILABLE / SHUTTING_DOWN,
3. `stop(grace)` lets in-flight calls finish,
4. `engine.close()` checkpoints the indexes and closes LMDB (when the server owns the engine).

`serve_forever` runs that sequence on SIGTERM / SIGINT.

Observability (`metrics=ServerMetrics()`, see `transport/metrics.py`): per-RPC counters and
latency histograms from the interceptor, plan choices and bulk-load rows from the engine,
collection sizes at scrape time; `serve_forever(metrics_port=...)` serves them over HTTP.

Security (`security=SecurityConfig(...)`, see `transport/security.py`): TLS, API keys with
roles (`transport/auth.py`), and the bind rule — a non-loopback address without TLS and
authentication is refused unless `allow_insecure`.

Limits (`limits=Limits(...)`, see `sievedb_server.limits`): message size, concurrent calls
(gRPC's own `maximum_concurrent_rpcs`: calls beyond it are refused with RESOURCE_EXHAUSTED
instead of queueing without bound), keepalive and connection age (dead peers are detected
and their calls cancelled), and the request limits the engine enforces.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_proto.v1 import sievedb_pb2_grpc as pb_grpc

from sievedb_server.limits import DEFAULT_LIMITS, Limits
from sievedb_server.transport.interceptors import RequestInterceptor, ShutdownGate
from sievedb_server.transport.security import SecurityConfig
from sievedb_server.transport.servicer import SieveDBServicer

if TYPE_CHECKING:
    from sievedb_server.core.engine import Engine
    from sievedb_server.transport.metrics import ServerMetrics

__all__ = ["SERVICE_NAME", "SieveServer", "create_server", "grpc_options", "serve_forever"]

log = logging.getLogger("sievedb.server")

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["SieveDB"].full_name
DEFAULT_GRACE_S = 10.0


class SieveServer(grpc.Server):
    """A started-or-not `grpc.Server` plus the pieces its graceful shutdown needs."""

    def __init__(
        self,
        server: grpc.Server,
        *,
        engine: Engine,
        health_servicer: health.HealthServicer,
        gate: ShutdownGate,
        owns_engine: bool,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._server = server
        self.engine = engine
        self.metrics = metrics
        self.health = health_servicer
        self.gate = gate
        self.owns_engine = owns_engine
        self._shutdown_lock = threading.Lock()
        self._shut_down = False

    # --- grpc.Server, delegated ----------------------------------------------------------

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float | None) -> threading.Event:
        return self._server.stop(grace)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout)

    # --- graceful shutdown ---------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Steps 1-2: report NOT_SERVING and refuse new sievedb calls (idempotent)."""
        self.health.enter_graceful_shutdown()
        self.gate.close()

    def shutdown(self, grace: float = DEFAULT_GRACE_S, *, close_engine: bool | None = None) -> None:
        """The whole sequence; `close_engine` defaults to whether this server built the engine."""
        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True
        self.begin_shutdown()
        self._server.stop(grace).wait()
        if self.metrics is not None:
            self.metrics.detach()
        if self.owns_engine if close_engine is None else close_engine:
            self.engine.close()


def grpc_options(limits: Limits) -> list[tuple[str, int]]:
    """The channel arguments that enforce the transport half of `limits`."""
    def ms(seconds: float) -> int:
        return int(seconds * 1000)

    options = [
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_send_message_length", limits.max_message_bytes),
        ("grpc.so_reuseport", 0),
        # Let clients keep idle connections alive with pings every >= 10 s without being
        # told "too many pings".
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]
    if limits.keepalive_time_s:
        options.append(("grpc.keepalive_time_ms", ms(limits.keepalive_time_s)))
    if limits.keepalive_timeout_s:
        options.append(("grpc.keepalive_timeout_ms", ms(limits.keepalive_timeout_s)))
    if limits.max_connection_idle_s:
        options.append(("grpc.max_connection_idle_ms", ms(limits.max_connection_idle_s)))
    if limits.max_connection_age_s:
        options.append(("grpc.max_connection_age_ms", ms(limits.max_connection_age_s)))
        options.append(("grpc.max_connection_age_grace_ms", ms(DEFAULT_GRACE_S)))
    return options


def create_server(
    address: str,
    data_dir: Path | str,
    *,
    engine: Engine | None = None,
    max_workers: int = 16,
    max_message_mb: int | None = None,
    security: SecurityConfig | None = None,
    engine_options: dict[str, Any] | None = None,
    limits: Limits | None = None,
    metrics: ServerMetrics | None = None,
) -> tuple[SieveServer, int]:
    """Bind `address` (port 0 picks a free port) and return `(server, real_port)`, unstarted.

    Without `engine`, an `Engine(data_dir, limits=...)` is opened and the server owns (and
    closes) it. `limits` (default: the engine's, or `DEFAULT_LIMITS`) is installed on the
    engine too, so one table governs the whole server; `max_message_mb`, if given, overrides
    its `max_message_bytes`. Requests or responses above it fail with RESOURCE_EXHAUSTED.
    `security` adds TLS and API keys; binding a non-loopback address without them raises
    `InsecureBind` (before anything is opened) unless `security.allow_insecure`.
    `engine_options` are keyword arguments of that `Engine` (store cap, checkpoint interval).
    `metrics` (a fresh `ServerMetrics`) is attached to the engine and fed by the interceptor.
    """
    security = security or SecurityConfig()
    for warning in security.check_bind(address):
        log.warning(warning)
    credentials = security.server_credentials()
    if limits is None:
        limits = getattr(engine, "limits", DEFAULT_LIMITS)
    if max_message_mb is not None:
        limits = dataclasses.replace(limits, max_message_bytes=max_message_mb * 1024 * 1024)
    owns_engine = engine is None
    if engine is None:
        from sievedb_server.core.engine import Engine

        engine = Engine(data_dir, limits=limits, **(engine_options or {}))
    elif hasattr(engine, "limits"):
        engine.limits = limits
    gate = ShutdownGate()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sievedb-rpc"),
        interceptors=[RequestInterceptor(gate, metrics), *security.interceptors()],
        options=grpc_options(limits),
        maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
    )
    pb_grpc.add_SieveDBServicer_to_server(SieveDBServicer(engine), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = security.bind(server, address, credentials)
    except RuntimeError:
        if owns_engine:
            engine.close()
        raise
    if port == 0:  # older grpcio reports a failed bind this way instead of raising
        if owns_engine:
            engine.close()
        raise RuntimeError(f"could not bind {address}")
    if metrics is not None:
        metrics.attach(engine)
    wrapped = SieveServer(
        server,
        engine=engine,
        health_servicer=health_servicer,
        gate=gate,
        owns_engine=owns_engine,
        metrics=metrics,
    )
    return wrapped, port


def _listening_on(address: str, port: int) -> str:
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return f"{host}:{port}"


def serve_forever(
    address: str,
    data_dir: Path | str,
    *,
    max_workers: int = 16,
    max_message_mb: int | None = None,
    grace: float = DEFAULT_GRACE_S,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    blas_threads: int | None = 1,
    security: SecurityConfig | None = None,
    engine_options: dict[str, Any] | None = None,
    limits: Limits | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully (must run in the main thread).

    `blas_threads` caps numpy's BLAS thread pool for the process (None leaves it alone): the
    server already runs requests in parallel, and a multi-threaded BLAS call per request
    oversubscribes the cores (measured: much worse tail latency of exact scans under load).

    `metrics_port` (None = off, 0 = any free port) serves Prometheus metrics on
    `http://metrics_host:port/metrics`; a non-loopback `metrics_host` needs
    `security.allow_insecure` (the endpoint has no TLS or authentication).
    """
    if blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=blas_threads, user_api="blas")
    security = security or SecurityConfig()
    metrics = None
    if metrics_port is not None:
        from sievedb_server.transport.metrics import ServerMetrics, check_metrics_bind

        check_metrics_bind(metrics_host, allow_insecure=security.allow_insecure)
        from prometheus_client import disable_created_metrics

        disable_created_metrics()  # process-wide: this process is the server; halves the series
        metrics = ServerMetrics()
    server, port = create_server(
        address,
        data_dir,
        max_workers=max_workers,
        max_message_mb=max_message_mb,
        security=security,
        engine_options=engine_options,
        limits=limits,
        metrics=metrics,
    )
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop_requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    endpoint = None
    try:
        if metrics is not None and metrics_port is not None:
            endpoint = metrics.serve_http(
                metrics_host, metrics_port, allow_insecure=security.allow_insecure
            )
            log.info("metrics on %s", endpoint.url, extra={"metrics_port": endpoint.port})
        server.start()
        log.info(
            "sievedb listening on %s, data dir %s; %s",
            _listening_on(address, port),
            Path(data_dir).resolve(),
            security.describe(address),
            extra={"port": port, "data_dir": str(data_dir)},
        )
        while not stop_requested.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        started_ns = time.perf_counter_ns()
        server.shutdown(grace)
        if endpoint is not None:
            endpoint.close()
        log.info("sievedb stopped cleanly in %.1f ms", (time.perf_counter_ns() - started_ns) / 1e6)
