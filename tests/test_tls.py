"""TLS on the gRPC port, with certificates generated here (a test CA, server and client certs).

Round trip over TLS, mutual TLS (a client without a certificate is refused, one signed by the
CA works), and clean failures when one side speaks TLS and the other does not.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sievedb import Client
from sievedb.cli import main as cli_main
from sievedb.errors import SieveDBError, Unavailable
from sievedb_server.core.engine import Engine
from sievedb_server.transport.auth import KeyStore
from sievedb_server.transport.security import SecurityConfig, security_from_options
from sievedb_server.transport.server import create_server
from sievedb_server.transport.tls import TlsConfig, TlsConfigError

DIM = 8
CALL_TIMEOUT = 20.0  # a deadline, not a timing assertion: failures must come back, not hang


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    stranger_cert: Path  # a client certificate signed by other_ca
    stranger_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _builder(
    subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, serial: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
    )


def _make_ca(directory: Path, stem: str, serial: int) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(f"sievedb test {stem}", _name(f"sievedb test {stem}"), key.public_key(), serial)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _write_cert(cert, directory / f"{stem}.pem"), key


def _make_leaf(
    directory: Path,
    stem: str,
    ca_pem: Path,
    ca_key: ec.EllipticCurvePrivateKey,
    serial: int,
    *,
    server: bool,
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.load_pem_x509_certificate(ca_pem.read_bytes()).subject
    builder = _builder(stem, issuer, key.public_key(), serial).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return _write_cert(cert, directory / f"{stem}.pem"), _write_key(key, directory / f"{stem}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_key = _make_ca(directory, "ca", 1)
    server_cert, server_key = _make_leaf(directory, "server", ca, ca_key, 2, server=True)
    client_cert, client_key = _make_leaf(directory, "client", ca, ca_key, 3, server=False)
    other_ca, other_key = _make_ca(directory, "other-ca", 4)
    stranger_cert, stranger_key = _make_leaf(
        directory, "stranger", other_ca, other_key, 5, server=False
    )
    return Pki(
        ca, server_cert, server_key, client_cert, client_key, other_ca, stranger_cert, stranger_key
    )


StartServer = Callable[[SecurityConfig], int]


@pytest.fixture
def start_server(engine: Engine) -> Iterator[StartServer]:
    servers = []

    def start(security: SecurityConfig) -> int:
        srv, port = create_server(
            "127.0.0.1:0", engine.data_dir, engine=engine, security=security, max_workers=4
        )
        srv.start()
        servers.append(srv)
        return port

    yield start
    for srv in servers:
        srv.shutdown(grace=1.0, close_engine=False)


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _client(port: int, **kwargs: Any) -> Client:
    return Client(f"127.0.0.1:{port}", timeout=CALL_TIMEOUT, **kwargs)


def _round_trip(db: Client) -> None:
    db.create_collection("docs", dim=DIM, metric="l2")
    vectors = _vectors(20, seed=11)
    assert db.upsert("docs", list(range(20)), vectors).upserted == 20
    result = db.search("docs", vectors[7], k=3, exact=True)
    assert int(result.ids[0]) == 7


def test_tls_round_trip(pki: Pki, start_server: StartServer) -> None:
    port = start_server(SecurityConfig(tls=TlsConfig(pki.server_cert, pki.server_key)))
    for target in (f"127.0.0.1:{port}", f"localhost:{port}"):
        with Client(target, tls=pki.ca, timeout=CALL_TIMEOUT) as db:
            if target.startswith("127"):
                _round_trip(db)
            assert [c.name for c in db.list_collections()] == ["docs"]


def test_tls_and_api_keys_together(pki: Pki, start_server: StartServer) -> None:
    key = "admin-key-over-tls-0123456789"
    security = SecurityConfig(
        api_keys=KeyStore.from_keys({key: "admin"}),
        tls=TlsConfig(pki.server_cert, pki.server_key),
    )
    port = start_server(security)
    with Client(f"127.0.0.1:{port}", tls=pki.ca, api_key=key, timeout=CALL_TIMEOUT) as db:
        _round_trip(db)
    with _client(port, tls=pki.ca) as db, pytest.raises(SieveDBError) as info:
        db.list_collections()
    assert info.value.reason == "UNAUTHENTICATED" and info.value.request_id


def test_health_over_tls(pki: Pki, start_server: StartServer) -> None:
    port = start_server(SecurityConfig(tls=TlsConfig(pki.server_cert, pki.server_key)))
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_mutual_tls_requires_a_certificate_signed_by_the_ca(
    pki: Pki, start_server: StartServer
) -> None:
    tls = TlsConfig(pki.server_cert, pki.server_key, client_ca=pki.ca)
    port = start_server(SecurityConfig(tls=tls))
    target = f"127.0.0.1:{port}"
    with Client(target, tls=pki.ca, timeout=CALL_TIMEOUT) as db, pytest.raises(Unavailable):
        db.list_collections()
    with (
        Client(
            target,
            tls=pki.ca,
            client_cert=pki.stranger_cert,
            client_key=pki.stranger_key,
            timeout=CALL_TIMEOUT,
        ) as db,
        pytest.raises(Unavailable),
    ):
        db.list_collections()
    with Client(
        target,
        tls=pki.ca,
        client_cert=pki.client_cert,
        client_key=pki.client_key,
        timeout=CALL_TIMEOUT,
    ) as db:
        _round_trip(db)


def test_plaintext_client_against_tls_server_fails_cleanly(
    pki: Pki, start_server: StartServer
) -> None:
    port = start_server(SecurityConfig(tls=TlsConfig(pki.server_cert, pki.server_key)))
    with _client(port) as db, pytest.raises(Unavailable) as info:
        db.list_collections()
    assert info.value.code is grpc.StatusCode.UNAVAILABLE


def test_tls_client_against_plaintext_server_fails_cleanly(
    pki: Pki, start_server: StartServer
) -> None:
    port = start_server(SecurityConfig())
    with _client(port, tls=pki.ca) as db, pytest.raises(Unavailable):
        db.list_collections()


def test_untrusted_server_certificate_is_refused(pki: Pki, start_server: StartServer) -> None:
    port = start_server(SecurityConfig(tls=TlsConfig(pki.server_cert, pki.server_key)))
    with _client(port, tls=pki.other_ca) as db, pytest.raises(Unavailable):
        db.list_collections()


def test_cli_client_with_tls_ca(
    pki: Pki, start_server: StartServer, capsys: pytest.CaptureFixture[str]
) -> None:
    port = start_server(SecurityConfig(tls=TlsConfig(pki.server_cert, pki.server_key)))
    target = f"127.0.0.1:{port}"
    assert (
        cli_main(["create", "docs", "--dim", "4", "--target", target, "--tls-ca", str(pki.ca)]) == 0
    )
    assert cli_main(["collections", "--target", target, "--tls-ca", str(pki.ca)]) == 0
    assert "docs" in capsys.readouterr().out
    assert cli_main(["collections", "--target", target, "--timeout", "20"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_tls_configuration_errors(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError, match="go together"):
        security_from_options(tls_cert=str(pki.server_cert))
    with pytest.raises(TlsConfigError, match="needs --tls-cert"):
        security_from_options(tls_client_ca=str(pki.ca))
    with pytest.raises(TlsConfigError, match="cannot read"):
        TlsConfig(tmp_path / "missing.pem", pki.server_key).server_credentials()
    not_pem = tmp_path / "junk.pem"
    not_pem.write_text("hello")
    with pytest.raises(TlsConfigError, match="not a PEM"):
        TlsConfig(pki.server_cert, not_pem).server_credentials()
    never = tmp_path / "never"
    with pytest.raises(TlsConfigError):
        create_server(
            "127.0.0.1:0",
            never,
            security=SecurityConfig(tls=TlsConfig(tmp_path / "missing.pem", pki.server_key)),
        )
    assert not never.exists()


def test_public_address_is_allowed_with_tls_and_client_certificates(pki: Pki) -> None:
    tls = TlsConfig(pki.server_cert, pki.server_key, client_ca=pki.ca)
    assert SecurityConfig(tls=tls).check_bind("0.0.0.0:0") == []
    assert "mutual TLS" in SecurityConfig(tls=tls).describe("0.0.0.0:50051")


def test_cli_client_certificate_options(
    pki: Pki, start_server: StartServer, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = TlsConfig(pki.server_cert, pki.server_key, client_ca=pki.ca)
    target = f"127.0.0.1:{start_server(SecurityConfig(tls=tls))}"
    base = ["collections", "--target", target, "--tls-ca", str(pki.ca)]
    assert (
        cli_main([*base, "--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key)]) == 0
    )
    assert cli_main(base) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err
