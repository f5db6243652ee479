"""Client side of TLS and API keys: channel credentials and the `authorization` metadata.

    tls=False                  plaintext (the default; fine for a loopback server)
    tls=True                   TLS, server certificate checked against the system roots
    tls="ca.pem"               TLS, server certificate checked against this CA (PEM path)
    client_cert=, client_key=  PEM paths of a client certificate (mutual TLS; implies TLS)

The API key travels as `authorization: Bearer <key>`; it is never put in an error message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import grpc

from sievedb._wire import local_error

__all__ = ["AUTHORIZATION_KEY", "PathLike", "auth_metadata", "channel_credentials"]

AUTHORIZATION_KEY: Final = "authorization"
PathLike = str | os.PathLike[str]


def auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """`(("authorization", "Bearer <key>"),)`, or `()` without a key."""
    if api_key is None or api_key == "":
        return ()
    if not isinstance(api_key, str) or not all(0x21 <= ord(c) <= 0x7E for c in api_key):
        raise local_error("api_key must be printable ASCII without spaces")
    return ((AUTHORIZATION_KEY, f"Bearer {api_key}"),)


def _read(path: PathLike, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise local_error(f"cannot read the {what} {path}: {exc.strerror}") from None


def channel_credentials(
    tls: bool | PathLike,
    client_cert: PathLike | None = None,
    client_key: PathLike | None = None,
) -> grpc.ChannelCredentials | None:
    """The credentials for `grpc.secure_channel`, or None for a plaintext channel."""
    if (client_cert is None) != (client_key is None):
        raise local_error("client_cert and client_key go together")
    if tls is False and client_cert is None:
        return None
    roots = None if isinstance(tls, bool) else _read(tls, "TLS root certificate")
    chain = _read(client_cert, "client certificate") if client_cert is not None else None
    key = _read(client_key, "client key") if client_key is not None else None
    return grpc.ssl_channel_credentials(
        root_certificates=roots, private_key=key, certificate_chain=chain
    )
