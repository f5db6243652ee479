"""Engine-level collection aliases, re-pointable atomically and persisted under the data dir.

An alias is a second name for a collection. Every request that names a collection resolves
aliases first (`Engine._get`), so clients can query `items` while it points at `items_v1`, and
a switch to `items_v2` is one atomic step: a request is served entirely by the old target or
entirely by the new one, never a mix. The previous target is remembered for rollback.

Persistence: `<data_dir>/aliases.json` (`{"version": 1, "aliases": {alias: {"collection": c,
"previous": p}}}`), replaced atomically (write a temp file, fsync, rename, fsync the dir), so a
crash leaves either the old table or the new one. In memory the table is an immutable dict
swapped in one assignment, so readers never lock.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sievedb_server.core.types import validate_collection_name
from sievedb_server.errors import (
    AlreadyExists,
    CollectionNotFound,
    CorruptData,
    FailedPrecondition,
    NotFound,
)

__all__ = ["Alias", "AliasTable"]

FILE_NAME = "aliases.json"


@dataclass(frozen=True)
class Alias:
    name: str
    collection: str
    previous: str = ""


class AliasTable:
    def __init__(self, data_dir: Path, *, sync: bool = True) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self.sync = sync
        self._lock = threading.Lock()
        self._table: MappingProxyType[str, Alias] = MappingProxyType(self._read())

    def _read(self) -> dict[str, Alias]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            return {
                name: Alias(name, v["collection"], v.get("previous", ""))
                for name, v in raw["aliases"].items()
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptData(f"unreadable alias table {self.path}: {exc}") from exc

    def _write(self, table: dict[str, Alias]) -> None:
        body: dict[str, Any] = {
            "version": 1,
            "aliases": {
                a.name: {"collection": a.collection, "previous": a.previous} for a in table.values()
            },
        }
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w") as fh:
            json.dump(body, fh, indent=1, sort_keys=True)
            fh.flush()
            if self.sync:
                os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        if self.sync:
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._table = MappingProxyType(table)

    # -- reads (lock-free) -------------------------------------------------------------------

    def resolve(self, name: str) -> str:
        alias = self._table.get(name)
        return alias.collection if alias is not None else name

    def get(self, name: str) -> Alias:
        alias = self._table.get(name)
        if alias is None:
            raise NotFound(f"alias {name!r} does not exist")
        return alias

    def list(self) -> list[Alias]:
        return sorted(self._table.values(), key=lambda a: a.name)

    def targets(self) -> set[str]:
        return {a.collection for a in self._table.values()}

    # -- writes -----------------------------------------------------------------------------

    def set(self, name: str, collection: str, exists: Callable[[str], bool]) -> Alias:
        """Point `name` at `collection` (create or re-point atomically); returns the new alias."""
        validate_collection_name(name)
        validate_collection_name(collection)
        with self._lock:
            if exists(name):
                raise AlreadyExists(f"{name!r} is a collection; an alias cannot shadow it")
            if not exists(collection):
                raise CollectionNotFound(f"collection {collection!r} does not exist")
            table = dict(self._table)
            old = table.get(name)
            alias = Alias(name, collection, old.collection if old else "")
            if old is not None and old.collection == collection:
                return old
            table[name] = alias
            self._write(table)
            return alias

    def rollback(self, name: str, exists: Callable[[str], bool]) -> Alias:
        """Point `name` back at its previous target."""
        with self._lock:
            old = self.get(name)
            if not old.previous:
                raise FailedPrecondition(f"alias {name!r} has no previous target")
            if not exists(old.previous):
                raise CollectionNotFound(f"collection {old.previous!r} no longer exists")
            table = dict(self._table)
            table[name] = alias = Alias(name, old.previous, old.collection)
            self._write(table)
            return alias

    def delete(self, name: str) -> bool:
        with self._lock:
            if name not in self._table:
                return False
            table = dict(self._table)
            del table[name]
            self._write(table)
            return True


def collection_exists(engine: Any) -> Callable[[str], bool]:
    """The existence test the alias table needs, for an `Engine` (real collections only)."""
    return lambda name: name in engine._collections
