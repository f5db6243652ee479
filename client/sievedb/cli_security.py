"""Command-line options for TLS and API keys, client side and `sievedb serve` side.

Client commands (every command built with `add_client_args`):

    --api-key KEY          default $SIEVEDB_API_KEY (prefer the variable: argv is visible in ps)
    --tls                  TLS with the system roots
    --tls-ca PEM           TLS, trusting this CA (default $SIEVEDB_TLS_CA)
    --tls-cert/--tls-key   a client certificate (mutual TLS)

`sievedb serve`:

    --api-keys FILE        role:key lines or JSON (default $SIEVEDB_API_KEYS_FILE);
                           $SIEVEDB_API_KEYS adds inline role:key entries
    --tls-cert/--tls-key   the server certificate chain and key (PEM)
    --tls-client-ca PEM    require client certificates signed by this CA
    --insecure             allow a non-loopback --host without TLS and authentication
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["add_client_security_args", "add_serve_security_args", "client_security_kwargs"]


def add_client_security_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("security")
    group.add_argument(
        "--api-key",
        default=os.environ.get("SIEVEDB_API_KEY") or None,
        help="API key sent as 'authorization: Bearer <key>' (default: $SIEVEDB_API_KEY)",
    )
    group.add_argument(
        "--tls", action="store_true", help="connect with TLS, trusting the system CAs"
    )
    group.add_argument(
        "--tls-ca",
        default=os.environ.get("SIEVEDB_TLS_CA") or None,
        metavar="PEM",
        help="connect with TLS, trusting this CA certificate (default: $SIEVEDB_TLS_CA)",
    )
    group.add_argument("--tls-cert", metavar="PEM", help="client certificate (mutual TLS)")
    group.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")


def client_security_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """`Client(...)` keyword arguments from the options above (absent options = plaintext)."""
    tls_ca = getattr(args, "tls_ca", None)
    return {
        "api_key": getattr(args, "api_key", None),
        "tls": tls_ca if tls_ca else bool(getattr(args, "tls", False)),
        "client_cert": getattr(args, "tls_cert", None),
        "client_key": getattr(args, "tls_key", None),
    }


def add_serve_security_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "security",
        "Without these the server is plaintext and open, so --host must be a loopback address "
        "unless --insecure is given.",
    )
    group.add_argument(
        "--api-keys",
        default=os.environ.get("SIEVEDB_API_KEYS_FILE") or None,
        metavar="FILE",
        help="require API keys: 'role:key' lines (role read|write|admin) or JSON "
        "(default: $SIEVEDB_API_KEYS_FILE; $SIEVEDB_API_KEYS adds inline entries)",
    )
    group.add_argument("--tls-cert", metavar="PEM", help="server certificate chain (enables TLS)")
    group.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    group.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="require client certificates signed by this CA (mutual TLS)",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without TLS and authentication (logs a warning)",
    )
