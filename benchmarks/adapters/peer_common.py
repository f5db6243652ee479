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

import hashlib
import importlib
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks.adapters.base import Unavailable
from benchmarks.filterspec import AttributeTable, Filter

__all__ = [
    "MARKER",
    "Untranslatable",
    "build_key",
    "cast",
    "fingerprint",
    "peer_version",
    "read_build_marker",
    "require",
    "sql_where",
    "write_build_marker",
]

MARKER = "peer-build.json"


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


# Build parameters that do not change what is built (query defaults, where caches live).
NOT_BUILD_KEYS = ("cache_dir", "reuse", "ef")


def build_key(name: str, dist: str, base: np.ndarray, table: AttributeTable,
              build_params: dict[str, Any]) -> str:
    params = {k: v for k, v in build_params.items() if k not in NOT_BUILD_KEYS}
    return fingerprint(base, table, {"system": name, "version": peer_version(dist), **params})


def fingerprint(base: np.ndarray, table: AttributeTable, params: dict[str, Any]) -> str:
    """A hash of everything a peer's built collection depends on (data, attributes, params)."""
    h = hashlib.sha256()
    h.update(json.dumps([list(base.shape), params], sort_keys=True, default=str).encode())
    step = 1 << 16
    for lo in range(0, base.shape[0], step):
        h.update(np.ascontiguousarray(base[lo:lo + step], dtype=np.float32).tobytes())
    for name, col in sorted(table.columns.items()):
        h.update(json.dumps([name, col.kind, list(col.vocab or ())]).encode())
        h.update(np.ascontiguousarray(col.values).tobytes())
        if col.indptr is not None:
            h.update(np.ascontiguousarray(col.indptr).tobytes())
    return h.hexdigest()[:24]


def read_build_marker(workdir: Path, key: str) -> dict[str, Any] | None:
    """The record of a finished build of exactly this data and parameters, if there is one.

    Peers persist their collections under the suite's stable work folder, so a second run
    reopens instead of re-loading (the marker is written only after a build completed).
    """
    try:
        doc = json.loads((workdir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("key") == key else None


def write_build_marker(workdir: Path, key: str, seconds: float, extra: dict[str, Any]) -> None:
    (workdir / MARKER).write_text(json.dumps({"key": key, "seconds": seconds, "extra": extra},
                                             default=str))


def sql_where(
    flt: Filter | None,
    schema: dict[str, str],
    *,
    ident: Callable[[str], str],
    lit: Callable[[Any, str], str],
    contains: Callable[[str, str], str],
) -> str | None:
    """The filter as an SQL boolean expression (None = no filter), for SQL-speaking peers.

    eq → `=`, in → `IN (...)` (empty → FALSE), range → `BETWEEN` / `>=` / `<=`, and/or/not →
    SQL's. Peers differ only in quoting (`ident`, `lit`) and in how a list column is asked
    whether it holds a value: `contains(column_sql, literal_sql)`.
    """
    if flt is None:
        return None

    def walk(f: Filter) -> str:
        op = f[0]
        if op in ("and", "or"):
            return "(" + f" {op.upper()} ".join(walk(sub) for sub in f[1:]) + ")"
        if op == "not":
            return f"(NOT {walk(f[1])})"
        kind = schema[f[1]]
        col = ident(f[1])
        if op == "eq":
            return f"{col} = {lit(f[2], kind)}"
        if op == "in":
            if not f[2]:
                return "FALSE"
            return f"{col} IN ({', '.join(lit(v, kind) for v in f[2])})"
        if op == "contains":
            return contains(col, lit(f[2], "keyword"))
        if op == "range":
            lo, hi = f[2], f[3]
            if lo is not None and hi is not None:
                return f"({col} BETWEEN {lit(lo, kind)} AND {lit(hi, kind)})"
            if lo is not None:
                return f"{col} >= {lit(lo, kind)}"
            if hi is not None:
                return f"{col} <= {lit(hi, kind)}"
            return "TRUE"
        raise Untranslatable(f"unknown filter operator {op!r}")

    return walk(flt)
