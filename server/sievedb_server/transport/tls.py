"""TLS for the gRPC port: the server certificate and key, optionally a CA for client certificates.

    TlsConfig(cert="server.pem", key="server.key")                       # TLS
    TlsConfig(cert="server.pem", key="server.key", client_ca="ca.pem")   # + mutual TLS

With `client_ca`, the handshake requires a client certificate signed by that CA (a client
without one never reaches an RPC). Files are PEM; they are read once, at server start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["TlsConfig", "TlsConfigError"]


class TlsConfigError(ValueError):
    """A TLS file that is missing, unreadable or not PEM."""


def _read_pem(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise TlsConfigError(f"the {what} {path} is not a PEM file")
    return data


@dataclass(frozen=True)
class TlsConfig:
    """Paths of the server certificate chain, its private key and the optional client CA."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cert", Path(self.cert))
        object.__setattr__(self, "key", Path(self.key))
        if self.client_ca is not None:
            object.__setattr__(self, "client_ca", Path(self.client_ca))

    @property
    def verifies_clients(self) -> bool:
        return self.client_ca is not None

    def server_credentials(self) -> grpc.ServerCredentials:
        chain = _read_pem(self.cert, "TLS certificate")
        key = _read_pem(self.key, "TLS private key")
        ca = _read_pem(self.client_ca, "client CA") if self.client_ca is not None else None
        return grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=ca, require_client_auth=ca is not None
        )

    def describe(self) -> str:
        if self.client_ca is None:
            return f"TLS (certificate {self.cert})"
        return f"mutual TLS (certificate {self.cert}, client CA {self.client_ca})"
