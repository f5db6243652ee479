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

Security (`security=SecurityConfig(...)`, see `transport/security.py`): TLS, API keys with
roles (`transport/auth.py`), and the bind rule — a non-loopback address without TLS and
authentication is refused unless `allow_insecure`.
"""

from __future__ import annotations

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

from sievedb_server.transport.interceptors import RequestInterceptor, ShutdownGate
from sievedb_server.transport.security import SecurityConfig
from sievedb_server.transport.servicer import SieveDBServicer

if TYPE_CHECKING:
    from sievedb_server.core.engine import Engine

__all__ = ["SERVICE_NAME", "SieveServer", "create_server", "serve_forever"]

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
    ) -> None:
        self._server = server
        self.engine = engine
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
        if self.owns_engine if close_engine is None else close_engine:
            self.engine.close()


def create_server(
    address: str,
    data_dir: Path | str,
    *,
    engine: Engine | None = None,
    max_workers: int = 16,
    max_message_mb: int = 64,
    security: SecurityConfig | None = None,
    engine_options: dict[str, Any] | None = None,
) -> tuple[SieveServer, int]:
    """Bind `address` (port 0 picks a free port) and return `(server, real_port)`, unstarted.

    Without `engine`, an `Engine(data_dir)` is opened and the server owns (and closes) it.
    Requests or responses above `max_message_mb` fail with RESOURCE_EXHAUSTED.
    `security` adds TLS and API keys; binding a non-loopback address without them raises
    `InsecureBind` (before anything is opened) unless `security.allow_insecure`.
    `engine_options` are keyword arguments of that `Engine` (store cap, checkpoint interval).
    """
    security = security or SecurityConfig()
    for warning in security.check_bind(address):
        log.warning(warning)
    credentials = security.server_credentials()
    owns_engine = engine is None
    if engine is None:
        from sievedb_server.core.engine import Engine

        engine = Engine(data_dir, **(engine_options or {}))
    max_bytes = max_message_mb * 1024 * 1024
    gate = ShutdownGate()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sievedb-rpc"),
        interceptors=[RequestInterceptor(gate), *security.interceptors()],
        options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.so_reuseport", 0),
        ],
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
    wrapped = SieveServer(
        server,
        engine=engine,
        health_servicer=health_servicer,
        gate=gate,
        owns_engine=owns_engine,
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
    max_message_mb: int = 64,
    grace: float = DEFAULT_GRACE_S,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    blas_threads: int | None = 1,
    security: SecurityConfig | None = None,
    engine_options: dict[str, Any] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully (must run in the main thread).

    `blas_threads` caps numpy's BLAS thread pool for the process (None leaves it alone): the
    server already runs requests in parallel, and a multi-threaded BLAS call per request
    oversubscribes the cores (measured: much worse tail latency of exact scans under load).
    """
    if blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=blas_threads, user_api="blas")
    security = security or SecurityConfig()
    server, port = create_server(
        address,
        data_dir,
        max_workers=max_workers,
        max_message_mb=max_message_mb,
        security=security,
        engine_options=engine_options,
    )
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop_requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
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
        log.info("sievedb stopped cleanly in %.1f ms", (time.perf_counter_ns() - started_ns) / 1e6)
