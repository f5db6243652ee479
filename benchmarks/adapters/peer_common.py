"""What the peer adapters (Chroma, LanceDB, Milvus Lite, Qdrant local) share.

Every peer translates `benchmarks.filterspec` filters with a *pure* function (filter + schema in,
the peer's own filter syntax out) so the translations are unit-tested without the peer
installed. Several peer languages have no general `not` (Chroma's `where` has none), so the
translators push negations down to the leaves (negation normal form) with the complement
operator of each leaf: `not eq` → `ne`, `not in` → `not in`, `not contains` → `not contains`,
`not range` → `< lo or > hi`. That is exact here because every row has every field (the
filterspec contract), so there is no missing-value case where `not (x == v)` and `x != v`
differ.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from types import ModuleType
from typing import Any

from benchmarks.adapters.base import Unavailable

__all__ = ["Untranslatable", "cast", "peer_version", "require"]


class Untranslatable(ValueError):
    """The peer's filter language cannot express this filter (the adapter's `supports` is False)."""


def cast(value: Any, kind: str) -> Any:
    """A literal as the Python type the peer stores for a column of `kind`.

    Peers compare typed values (Chroma matches an int bound against int metadata only; Milvus
    and LanceDB parse `3` and `3.0` differently), so bounds follow the column, not the YAML.
    """
    if kind in ("int", "datetime"):
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return bool(value)
    return str(value)


def require(module: str, dist: str) -> ModuleType:
    """Import a peer's package or raise `Unavailable` (the suite reports it, tests skip)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(
            f"{dist} is not installed (pip install -e '.[peers]' or make bench-peers): {exc}"
        ) from exc


def peer_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
