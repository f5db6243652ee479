"""`sievedb serve` options for the server's limits table (`sievedb_server.limits.Limits`).

One flag per field, named after it (`max_k` → `--max-k`, `stream_idle_timeout_s` →
`--stream-idle-timeout-s`); unset flags keep the server default, which `--help` shows when
the server is installed. The message size keeps its own `--max-message-mb` flag.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

__all__ = ["add_serve_limit_args", "limits_from_args"]

_SKIP = {"max_message_bytes"}  # --max-message-mb


def _limit_fields() -> list[Any]:
    try:
        from sievedb_server.limits import Limits
    except ImportError:  # the client alone: `serve` will say the server is missing
        return []
    return [f for f in dataclasses.fields(Limits) if f.name not in _SKIP]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_serve_limit_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "limits", "request limits (see the README, 'Operations: limits')"
    )
    for f in _limit_fields():
        kind = float if f.type in ("float", float) else int
        unit = " seconds, 0 = off" if f.name.endswith("_s") else ""
        group.add_argument(
            _flag(f.name), dest=f"limit_{f.name}", type=kind, default=None, metavar="N",
            help=f"default {f.default}{unit}",
        )


def limits_from_args(args: argparse.Namespace) -> Any:
    """The server's `Limits` with the flags given applied (raises ValueError for bad values)."""
    from sievedb_server.limits import DEFAULT_LIMITS

    overrides = {
        f.name: getattr(args, f"limit_{f.name}")
        for f in _limit_fields()
        if getattr(args, f"limit_{f.name}", None) is not None
    }
    return dataclasses.replace(DEFAULT_LIMITS, **overrides)
