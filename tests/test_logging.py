"""Structured logs: one access line per RPC with its request id, no secrets, tracebacks by id.

Records are captured with `caplog` and rendered through the server's own `JsonFormatter`, so
the `extra=` fields are checked exactly as `--log-format json` prints them.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sievedb import Client
from sievedb.errors import InternalError, InvalidArgument, PermissionDenied, Unauthenticated
from sievedb_server.core.engine import Engine
from sievedb_server.logs import JsonFormatter, configure_logging
from sievedb_server.transport.auth import KeyStore
from sievedb_server.transport.security import SecurityConfig
from sievedb_server.transport.server import create_server

KEYS = {"read": "read-key-5f0c1e9a7b3d2468", "admin": "admin-key-0f1e2d3c4b5a6978"}
WRONG_KEY = "nope-key-1234567890abcdef"
FIELDS = {"request_id", "method", "status", "reason", "duration_ms", "peer", "collection"}


def json_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    fmt = JsonFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records]


def access_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r for r in json_records(caplog) if r["logger"] == "sievedb.access"]


@pytest.fixture
def auth_port(engine: Engine) -> Iterator[int]:
    security = SecurityConfig(api_keys=KeyStore.from_keys({v: k for k, v in KEYS.items()}))
    srv, port = create_server("127.0.0.1:0", engine.data_dir, engine=engine, security=security)
    srv.start()
    yield port
    srv.shutdown(grace=1.0, close_engine=False)


def test_one_access_line_per_rpc_with_its_fields(
    server: tuple[Client, Engine], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = server
    caplog.set_level(logging.INFO, logger="sievedb.access")
    client.create_collection("docs", 4)
    client.upsert("docs", [1, 2], np.eye(2, 4, dtype=np.float32))
    client.search("docs", [1, 0, 0, 0], k=1)
    with pytest.raises(InvalidArgument) as bad:
        client.search("docs", [1, 0, 0, 0], k=0)
    with Client(client.target, metadata=[("x-request-id", "trace-42")]) as traced:
        traced.count("docs")

    lines = access_records(caplog)
    assert [(r["method"].rsplit("/", 1)[1], r["status"]) for r in lines] == [
        ("CreateCollection", "OK"),
        ("Upsert", "OK"),
        ("Search", "OK"),
        ("Search", "INVALID_ARGUMENT"),
        ("Count", "OK"),
    ]
    for r in lines:
        assert FIELDS <= r.keys()
        assert r["collection"] == "docs"
        assert r["peer"].startswith(("ipv4:127.0.0.1:", "ipv6:"))
        assert r["duration_ms"] >= 0
        assert r["request_id"]
    assert lines[3]["request_id"] == bad.value.request_id
    assert lines[3]["reason"] == bad.value.reason
    assert lines[4]["request_id"] == "trace-42"  # the client's own id is kept
    assert len({r["request_id"] for r in lines}) == len(lines)


def test_keys_and_authorization_metadata_are_never_logged(
    auth_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    target = f"127.0.0.1:{auth_port}"
    with Client(target, api_key=KEYS["admin"]) as admin:
        admin.create_collection("docs", 4)
    with Client(target, api_key=KEYS["read"]) as reader:
        reader.count("docs")
        with pytest.raises(PermissionDenied):
            reader.drop_collection("docs")
    with Client(target, api_key=WRONG_KEY) as stranger, pytest.raises(Unauthenticated):
        stranger.count("docs")

    rendered = [JsonFormatter().format(r) for r in caplog.records]
    text = "\n".join(rendered) + caplog.text
    statuses = [r["status"] for r in access_records(caplog)]
    assert statuses == ["OK", "OK", "PERMISSION_DENIED", "UNAUTHENTICATED"]
    for secret in [*KEYS.values(), WRONG_KEY]:
        assert secret not in text
    assert "bearer" not in text.lower()
    assert "authorization" not in text.lower()


def test_internal_errors_log_the_traceback_under_the_request_id(
    server: tuple[Client, Engine],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, engine = server
    caplog.set_level(logging.INFO)
    client.create_collection("docs", 4)

    def broken_count(name: str, filter: Any = None) -> int:
        raise RuntimeError("disk gremlin at /secret/path")

    monkeypatch.setattr(engine, "count", broken_count)
    with pytest.raises(InternalError) as failure:
        client.count("docs")
    request_id = failure.value.request_id
    assert request_id and "gremlin" not in str(failure.value)  # the client gets the id only

    records = json_records(caplog)
    errors = [r for r in records if r["logger"] == "sievedb.errors"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == request_id
    assert errors[0]["level"] == "ERROR"
    assert "Traceback" in errors[0]["exc_info"]
    assert "RuntimeError: disk gremlin" in errors[0]["exc_info"]
    access = [r for r in records if r["logger"] == "sievedb.access" and r["status"] == "INTERNAL"]
    assert [r["request_id"] for r in access] == [request_id]


def test_control_characters_in_a_name_cannot_forge_log_lines(
    server: tuple[Client, Engine], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = server
    caplog.set_level(logging.INFO, logger="sievedb.access")
    forged = "x\n2026-01-01 INFO sievedb.access forged OK"
    with pytest.raises(InvalidArgument):
        client.describe_collection(forged)
    (line,) = access_records(caplog)
    assert line["collection"] == repr(forged)
    assert "\n" not in caplog.records[0].getMessage()


def test_configure_logging_text_and_json() -> None:
    for fmt in ("text", "json"):
        stream = io.StringIO()
        root = logging.getLogger()
        saved = (list(root.handlers), root.level)
        try:
            configure_logging("info", fmt, stream)
            logging.getLogger("sievedb.access").info(
                "/svc/M OK 1.000ms request_id=r1", extra={"request_id": "r1", "status": "OK"}
            )
            logging.getLogger("sievedb.access").debug("hidden")
        finally:
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in saved[0]:
                root.addHandler(handler)
            root.setLevel(saved[1])
        (out,) = stream.getvalue().splitlines()
        if fmt == "json":
            doc = json.loads(out)
            assert doc["request_id"] == "r1" and doc["level"] == "INFO"
            assert doc["message"] == "/svc/M OK 1.000ms request_id=r1"
            assert doc["logger"] == "sievedb.access" and doc["ts"].endswith("+00:00")
        else:
            assert out.endswith("INFO sievedb.access /svc/M OK 1.000ms request_id=r1")
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml")
