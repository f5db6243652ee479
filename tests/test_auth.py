"""API keys with roles: the interceptor, the role table, key sources, the bind rule, the CLI.

A real server on port 0 with three keys (read, write, admin). Keys must never reach a log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import SpawnServer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sievedb import Client
from sievedb.cli import main as cli_main
from sievedb.errors import PermissionDenied, SieveDBError, Unauthenticated
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_server import errors
from sievedb_server.core.engine import Engine
from sievedb_server.transport.auth import (
    METHOD_ROLES,
    AuthInterceptor,
    KeyFileError,
    KeyStore,
    Role,
    load_keys,
)
from sievedb_server.transport.security import (
    InsecureBind,
    SecurityConfig,
    host_of,
    is_loopback,
)
from sievedb_server.transport.server import create_server

KEYS = {
    "read": "read-key-5f0c1e9a7b3d2468",
    "write": "write-key-9a8b7c6d5e4f3021",
    "admin": "admin-key-0f1e2d3c4b5a6978",
}
WRONG_KEY = "nope-key-1234567890abcdef"
DIM = 4


@pytest.fixture
def auth_port(engine: Engine) -> Iterator[int]:
    security = SecurityConfig(api_keys=KeyStore.from_keys({v: k for k, v in KEYS.items()}))
    srv, port = create_server("127.0.0.1:0", engine.data_dir, engine=engine, security=security)
    srv.start()
    yield port
    srv.shutdown(grace=1.0, close_engine=False)


def client(port: int, role: str | None = None, *, api_key: str | None = None) -> Client:
    key = api_key if api_key is not None else (KEYS[role] if role else None)
    return Client(f"127.0.0.1:{port}", timeout=30.0, api_key=key)


def _vectors(n: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _make_collection(port: int, name: str = "docs") -> None:
    with client(port, "admin") as db:
        db.create_collection(name, dim=DIM, metric="l2")
        db.upsert(name, list(range(8)), _vectors(8))


# --- the role table --------------------------------------------------------------------------


def test_every_rpc_of_the_service_has_a_role() -> None:
    service = pb.DESCRIPTOR.services_by_name["SieveDB"]
    assert set(METHOD_ROLES) == {m.name for m in service.methods}
    assert all(isinstance(role, Role) for role in METHOD_ROLES.values())


def test_an_rpc_missing_from_the_table_is_refused_even_to_admin() -> None:
    interceptor = AuthInterceptor(KeyStore.from_keys({KEYS["admin"]: "admin"}))
    metadata = (("authorization", f"Bearer {KEYS['admin']}"),)
    with pytest.raises(errors.PermissionDenied, match="no role assigned"):
        interceptor.authorize("/sievedb.v1.SieveDB/NotInTheTable", metadata)
    assert interceptor.authorize("/grpc.health.v1.Health/Check", ()) is None


def test_roles_are_ordered() -> None:
    assert Role.READ < Role.WRITE < Role.ADMIN
    assert METHOD_ROLES["Search"] is Role.READ
    assert METHOD_ROLES["Upsert"] is Role.WRITE
    assert METHOD_ROLES["DropCollection"] is Role.ADMIN


# --- the interceptor on a real server --------------------------------------------------------


def test_no_key_is_unauthenticated_with_reason_and_request_id(auth_port: int) -> None:
    with client(auth_port) as db, pytest.raises(Unauthenticated) as info:
        db.list_collections()
    assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert info.value.reason == "UNAUTHENTICATED"
    assert info.value.request_id
    assert "Bearer" in info.value.message


def test_wrong_key_is_unauthenticated(auth_port: int) -> None:
    with client(auth_port, api_key=WRONG_KEY) as db, pytest.raises(Unauthenticated) as info:
        db.list_collections()
    assert info.value.reason == "UNAUTHENTICATED"
    assert info.value.request_id
    assert WRONG_KEY not in str(info.value)


def test_malformed_authorization_is_unauthenticated(auth_port: int) -> None:
    metadata = (("authorization", f"Basic {KEYS['admin']}"),)
    with (
        Client(f"127.0.0.1:{auth_port}", metadata=metadata) as db,
        pytest.raises(Unauthenticated, match="Bearer"),
    ):
        db.list_collections()


def test_read_key_reads_but_cannot_write(auth_port: int) -> None:
    _make_collection(auth_port)
    with client(auth_port, "read") as db:
        assert [c.name for c in db.list_collections()] == ["docs"]
        assert len(db.search("docs", _vectors(1, seed=1)[0], k=3).ids) == 3
        assert db.count("docs") == 8
        with pytest.raises(PermissionDenied) as info:
            db.upsert("docs", [100], _vectors(1))
        with pytest.raises(PermissionDenied):
            db.bulk_load("docs", _vectors(4), ids=[200, 201, 202, 203])
    assert info.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert info.value.reason == "PERMISSION_DENIED"
    assert info.value.request_id
    assert "Upsert needs the write role" in info.value.message
    with client(auth_port, "admin") as db:
        assert db.count("docs") == 8  # nothing of the refused writes landed


def test_write_key_writes_but_cannot_administer(auth_port: int) -> None:
    _make_collection(auth_port)
    with client(auth_port, "write") as db:
        assert db.upsert("docs", [8, 9], _vectors(2, seed=3)).upserted == 2
        assert db.delete("docs", [0]).deleted == 1
        assert db.count("docs") == 9
        with pytest.raises(PermissionDenied, match="CreateCollection needs the admin role"):
            db.create_collection("other", dim=DIM)
        with pytest.raises(PermissionDenied):
            db.drop_collection("docs")
        with pytest.raises(PermissionDenied):
            db.update_schema("docs", {"year": "integer"})


def test_admin_can_do_everything(auth_port: int) -> None:
    with client(auth_port, "admin") as db:
        db.create_collection("docs", dim=DIM, metric="l2", schema={"year": "integer"})
        db.upsert("docs", [1, 2, 3], _vectors(3), [{"year": 2020}, {"year": 2021}, None])
        db.update_schema("docs", {"tag": "keyword"})
        result = db.search("docs", _vectors(1, seed=5)[0], k=2, filter="year >= 2021")
        assert list(result.ids) == [2]
        assert db.bulk_load("docs", _vectors(2, seed=6), ids=[10, 11]).upserted == 2
        assert db.count("docs") == 5
        assert db.drop_collection("docs")


def test_health_needs_no_key(auth_port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{auth_port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="sievedb.v1.SieveDB"), timeout=10
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_keys_never_reach_the_server_log(auth_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _make_collection(auth_port)
    for role in KEYS:
        with client(auth_port, role) as db:
            db.list_collections()
            try:
                db.drop_collection("missing", missing_ok=True)
            except PermissionDenied:
                pass
    with client(auth_port, api_key=WRONG_KEY) as db, pytest.raises(Unauthenticated):
        db.count("docs")
    text = caplog.text
    assert "UNAUTHENTICATED" in text and "PERMISSION_DENIED" in text  # the log was captured
    for secret in [*KEYS.values(), WRONG_KEY]:
        assert secret not in text


# --- key sources -----------------------------------------------------------------------------


def test_key_file_lines_json_and_digests(tmp_path: Path) -> None:
    digest = hashlib.sha256(KEYS["admin"].encode()).hexdigest()
    lines = tmp_path / "keys.txt"
    lines.write_text(
        f"# team keys\n\nread:{KEYS['read']}\nwrite:{KEYS['write']}\nadmin:sha256:{digest}\n"
    )
    store = load_keys(lines, environ={})
    assert store is not None and len(store) == 3
    assert store.role_of(KEYS["read"]) is Role.READ
    assert store.role_of(KEYS["admin"]) is Role.ADMIN
    assert store.role_of(WRONG_KEY) is None
    doc = {"keys": [{"role": "write", "key": KEYS["write"]}, {"role": "admin", "sha256": digest}]}
    as_json = tmp_path / "keys.json"
    as_json.write_text(json.dumps(doc))
    store = load_keys(as_json, environ={})
    assert store is not None and store.role_of(KEYS["write"]) is Role.WRITE
    assert store.summary() == "2 keys (admin 1, write 1)"
    for secret in KEYS.values():
        assert secret not in repr(store)


def test_keys_from_the_environment_add_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(f"read:{KEYS['read']}\n")
    env = {"SIEVEDB_API_KEYS": f"write:{KEYS['write']},admin:{KEYS['admin']}"}
    store = load_keys(path, environ=env)
    assert store is not None and len(store) == 3
    assert store.role_of(KEYS["admin"]) is Role.ADMIN
    assert load_keys(None, environ={}) is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (f"owner:{KEYS['admin']}\n", "unknown role"),
        ("read:short\n", "at least 16"),
        (f"{KEYS['read']}\n", "expected role:key"),
        ("admin:sha256:abc\n", "64 hex"),
        ("# nothing\n", "none was found"),
        ('{"keys": [{"role": "read"}]}', "key"),
        ("{not json", "invalid JSON"),
    ],
)
def test_bad_key_files_are_refused_without_echoing_keys(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(KeyFileError, match=problem) as info:
        load_keys(path, environ={})
    assert KEYS["admin"] not in str(info.value)


# --- the bind rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.3.2.1:0", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("unix:/tmp/sievedb.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        (":50051", False),
        ("192.0.2.10:50051", False),
    ],
)
def test_loopback_detection(address: str, loopback: bool) -> None:
    assert is_loopback(host_of(address)) is loopback


def test_non_loopback_needs_tls_and_auth_or_insecure(tmp_path: Path) -> None:
    keys = KeyStore.from_keys({KEYS["admin"]: "admin"})
    assert SecurityConfig().check_bind("127.0.0.1:0") == []
    with pytest.raises(InsecureBind, match="TLS .* and authentication"):
        SecurityConfig().check_bind("0.0.0.0:0")
    with pytest.raises(InsecureBind, match="without TLS"):
        SecurityConfig(api_keys=keys).check_bind("0.0.0.0:0")  # keys would cross in clear
    warnings = SecurityConfig(allow_insecure=True).check_bind("0.0.0.0:0")
    assert len(warnings) == 1 and "INSECURE" in warnings[0]
    never = tmp_path / "never-created"
    with pytest.raises(InsecureBind):
        create_server("0.0.0.0:0", never)
    assert not never.exists()  # refused before the engine opened anything


def test_default_startup_line_says_loopback_and_open() -> None:
    line = SecurityConfig().describe("127.0.0.1:50051")
    assert "loopback only" in line and "plaintext" in line and "no authentication" in line


def test_cli_serve_refuses_a_public_address_without_security(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sievedb.cli",
            "serve",
            "--data-dir",
            str(data),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "refusing to listen on 0.0.0.0:0" in proc.stderr and "--insecure" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not data.exists()


# --- end to end: `sievedb serve --api-keys` and the CLI's --api-key ----------------------------


def test_serve_with_a_key_file_and_cli_api_key(
    tmp_path: Path,
    spawn_server: SpawnServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("SIEVEDB_API_KEYS", raising=False)
    monkeypatch.delenv("SIEVEDB_API_KEY", raising=False)
    key_file = tmp_path / "keys.txt"
    key_file.write_text("".join(f"{role}:{key}\n" for role, key in KEYS.items()))
    proc, port = spawn_server(tmp_path / "data", "--api-keys", str(key_file))
    target = f"127.0.0.1:{port}"
    assert (
        cli_main(["create", "docs", "--dim", "4", "--target", target, "--api-key", KEYS["admin"]])
        == 0
    )
    assert cli_main(["collections", "--target", target]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    monkeypatch.setenv("SIEVEDB_API_KEY", KEYS["read"])
    assert cli_main(["collections", "--target", target]) == 0
    assert "docs" in capsys.readouterr().out
    assert cli_main(["drop", "docs", "--target", target]) == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err
    log = Path(proc.log_path).read_text()  # type: ignore[attr-defined]
    assert "API keys required: 3 keys (admin 1, read 1, write 1)" in log
    assert "PERMISSION_DENIED" in log
    for secret in KEYS.values():
        assert secret not in log


def test_client_rejects_a_key_that_cannot_be_sent() -> None:
    with pytest.raises(SieveDBError, match="printable ASCII"):
        Client("127.0.0.1:1", api_key="has space")
