"""How the server is exposed: TLS, API keys, and the rule for non-loopback addresses.

The rule (decided): without configuration the server listens on loopback only. Binding any
other address (`0.0.0.0`, `[::]`, a LAN address or host name) REQUIRES

* TLS (`TlsConfig`), so keys and data do not cross the network in clear, and
* authentication: API keys, or client certificates verified against `client_ca`.

Otherwise `create_server` refuses to start (`InsecureBind`) unless `allow_insecure=True`
(`sievedb serve --insecure`), which starts anyway and logs a WARNING naming what is missing.
Refusing rather than warning: a warning scrolls by, a reachable unauthenticated database with
`DropCollection` does not forgive.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

import grpc

from sievedb_server.transport.auth import AuthInterceptor, KeyFileError, KeyStore, load_keys
from sievedb_server.transport.tls import TlsConfig, TlsConfigError

__all__ = [
    "SECURITY_ERRORS",
    "InsecureBind",
    "SecurityConfig",
    "host_of",
    "is_loopback",
    "security_from_options",
]


class InsecureBind(ValueError):
    """Refused: a non-loopback address without TLS and authentication."""


def host_of(address: str) -> str:
    """The host part of a gRPC bind address: `h:p`, `[v6]:p`, or `unix:...` as is."""
    if address.startswith(("unix:", "unix-abstract:")):
        return address
    if address.startswith("["):
        return address[1 : address.find("]")] if "]" in address else address
    host, sep, _ = address.rpartition(":")
    return host if sep else address


def is_loopback(host: str) -> bool:
    """True for loopback IPs, `localhost`, unix sockets, and names resolving only to loopback."""
    if host.startswith(("unix:", "unix-abstract:")):
        return True
    if host.lower() == "localhost":
        return True
    if not host:
        return False  # "":port listens on every interface
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%", 1)[0]).is_loopback for a in addresses
    )


@dataclass(frozen=True)
class SecurityConfig:
    """TLS and API keys of one server; the default (both None) is plaintext and open."""

    api_keys: KeyStore | None = None
    tls: TlsConfig | None = None
    allow_insecure: bool = False

    @property
    def authenticates(self) -> bool:
        return self.api_keys is not None or (self.tls is not None and self.tls.verifies_clients)

    def missing_for(self, address: str) -> list[str]:
        """What binding `address` lacks under the rule above ([] = fine)."""
        if is_loopback(host_of(address)):
            return []
        missing = []
        if self.tls is None:
            missing.append("TLS (--tls-cert/--tls-key)")
        if not self.authenticates:
            missing.append("authentication (--api-keys or --tls-client-ca)")
        return missing

    def check_bind(self, address: str) -> list[str]:
        """Raise `InsecureBind`, or return the warnings to log (only with `allow_insecure`)."""
        missing = self.missing_for(address)
        if not missing:
            return []
        lacking = " and ".join(missing)
        if not self.allow_insecure:
            raise InsecureBind(
                f"refusing to listen on {address} without {lacking}: it is not a loopback "
                "address. Configure them, bind 127.0.0.1, or pass --insecure to accept the risk"
            )
        risk = (
            "anyone who can reach this port can read, write and drop collections"
            if not self.authenticates
            else "API keys and data cross the network in clear"
        )
        return [f"INSECURE: listening on non-loopback {address} without {lacking}; {risk}"]

    def interceptors(self) -> list[grpc.ServerInterceptor]:
        """Inner interceptors to install after the `RequestInterceptor`."""
        return [AuthInterceptor(self.api_keys)] if self.api_keys is not None else []

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """Read the TLS files now (None = plaintext), so a bad path fails before anything opens."""
        return self.tls.server_credentials() if self.tls is not None else None

    @staticmethod
    def bind(server: grpc.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
        if credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, credentials)

    def describe(self, address: str) -> str:
        """One safe line for the startup log (never a key)."""
        scope = "loopback only" if is_loopback(host_of(address)) else "reachable from the network"
        transport = self.tls.describe() if self.tls is not None else "plaintext"
        if self.api_keys is not None:
            auth = f"API keys required: {self.api_keys.summary()}"
        elif self.tls is not None and self.tls.verifies_clients:
            auth = "client certificates required, no API keys"
        else:
            auth = "no authentication: every client may do anything"
        line = f"{scope}; {transport}; {auth}"
        if scope == "loopback only" and self.tls is None and self.api_keys is None:
            line += "; to serve other machines, add TLS and API keys and bind another --host"
        return line


SECURITY_ERRORS: tuple[type[ValueError], ...] = (InsecureBind, KeyFileError, TlsConfigError)
"""Configuration mistakes a command line reports as `error: ...` (no traceback)."""


def security_from_options(
    *,
    api_keys_file: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_client_ca: str | None = None,
    insecure: bool = False,
) -> SecurityConfig:
    """Build a `SecurityConfig` from `sievedb serve` options (keys also from the environment)."""
    if (tls_cert is None) != (tls_key is None):
        raise TlsConfigError("--tls-cert and --tls-key go together")
    if tls_client_ca is not None and tls_cert is None:
        raise TlsConfigError("--tls-client-ca needs --tls-cert and --tls-key")
    tls = None
    if tls_cert is not None and tls_key is not None:
        ca = Path(tls_client_ca) if tls_client_ca is not None else None
        tls = TlsConfig(Path(tls_cert), Path(tls_key), ca)
    return SecurityConfig(api_keys=load_keys(api_keys_file), tls=tls, allow_insecure=insecure)
