"""Shared fixtures: an in-process engine, a real in-process gRPC server, server subprocesses.

* `engine` — an `Engine` under `tmp_path`, closed at teardown.
* `server` — a real gRPC server on port 0 wrapping that engine; yields `(client, engine)`.
  `server_handle` gives the `SieveServer` itself (for shutdown tests).
* `spawn_server` — a factory `spawn_server(data_dir) -> (Popen, port)` that runs
  `sievedb serve` in a SUBPROCESS on a free port and returns once health says SERVING (for
  persistence and crash tests). Processes still running at teardown are terminated.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sievedb import Client
from sievedb_server.core.engine import Engine
from sievedb_server.transport.server import SieveServer, create_server

SpawnServer = Callable[..., tuple[subprocess.Popen[bytes], int]]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path / "data")
    yield eng
    eng.close()


@pytest.fixture
def server_handle(engine: Engine) -> Iterator[tuple[SieveServer, int]]:
    srv, port = create_server("127.0.0.1:0", engine.data_dir, engine=engine, max_workers=8)
    srv.start()
    yield srv, port
    srv.shutdown(grace=1.0, close_engine=False)


@pytest.fixture
def server(
    server_handle: tuple[SieveServer, int], engine: Engine
) -> Iterator[tuple[Client, Engine]]:
    _, port = server_handle
    with Client(f"127.0.0.1:{port}", timeout=30.0) as client:
        yield client, engine


# --- subprocess servers ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health_status(port: int, service: str = "", timeout: float = 1.0) -> int | None:
    """The health status of `service` on 127.0.0.1:port, or None if it does not answer."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return None
        return int(reply.status)


def wait_for_serving(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"sievedb serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
            )
        if health_status(port, timeout=0.5) == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(0.05)
    raise TimeoutError(f"sievedb serve not SERVING after {timeout}s:\n{log.read_text()}")


@pytest.fixture
def spawn_server(tmp_path: Path) -> Iterator[SpawnServer]:
    """Factory: `spawn_server(data_dir, *extra_args) -> (Popen, port)`, SERVING on return.

    The process's combined output goes to `proc.log_path` (a file under tmp_path).
    """
    procs: list[tuple[subprocess.Popen[bytes], object]] = []

    def spawn(
        data_dir: Path | str, *extra_args: str, timeout: float = 30.0
    ) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        log_path = tmp_path / f"server-{len(procs)}-{port}.log"
        log_file = open(log_path, "wb")  # noqa: SIM115 - closed at teardown, after the process
        cmd = [
            sys.executable,
            "-m",
            "sievedb.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra_args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        proc.log_path = log_path  # type: ignore[attr-defined]
        procs.append((proc, log_file))
        wait_for_serving(port, proc, log_path, timeout)
        return proc, port

    yield spawn
    for proc, log_file in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_file.close()  # type: ignore[attr-defined]
