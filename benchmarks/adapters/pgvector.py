"""pgvector (PostgreSQL + the `vector` extension) behind the suite's `System` interface.

Runs a real PostgreSQL server locally from PyPI: `pgserver` bundles PostgreSQL 16.2 with
pgvector 0.6.2 and starts it on a Unix socket under the work folder; the adapter talks SQL to
it with psycopg 3. That pgvector predates iterative index scans (0.8.0), so a filtered
`ORDER BY embedding <#> q LIMIT k` is what it always was: PostgreSQL's planner either walks the
HNSW index and filters its `hnsw.ef_search` candidates afterwards (post-filter: fewer than k
rows when the filter is selective), or uses the B-tree/GIN indexes and sorts the matching rows
exactly. Which one it picks per query is PostgreSQL's choice, as for any pgvector user.

Table: id bigint, embedding vector(d), keyword → text, keyword_list → text[] (`@>`, GIN index),
int/datetime → bigint (epoch seconds), float → double precision, bool → boolean; B-tree on
every scalar column (`scalar_indexes=True`, default). HNSW `vector_ip_ops` with m=16,
ef_construction=200, built after the COPY with `maintenance_work_mem` raised (pgvector's
advice). Query-time `ef` is `SET hnsw.ef_search` (pgvector caps it at 1000). Query time
includes the Unix-socket round trip and SQL planning, as it does for users.

Running as root, pgserver runs PostgreSQL as a system user `pgserver` that it creates with
`useradd`, and makes the data folder's parent folders traversable by others (chmod o+rx).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmarks.adapters.base import BuildInfo, System, dir_bytes
from benchmarks.adapters.peer_common import (
    MARKER,
    Untranslatable,
    build_key,
    cast,
    peer_version,
    read_build_marker,
    require,
    sql_where,
    write_build_marker,
)
from benchmarks.filterspec import AttributeTable, Filter

__all__ = ["PgVector", "to_pg_where"]

TABLE = "items"
_SQL_TYPES = {"keyword": "text", "keyword_list": "text[]", "int": "bigint",
              "datetime": "bigint", "float": "double precision", "bool": "boolean"}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: Any, kind: str) -> str:
    v = cast(value, kind)
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Untranslatable(f"non-finite bound {v!r}")
        return repr(v)
    return str(v)


def to_pg_where(flt: Filter | None, schema: dict[str, str]) -> str | None:
    """The filter as a PostgreSQL boolean expression (None = no WHERE clause).

    eq → `=`, in → `IN (...)`, contains → `tags @> ARRAY['v']::text[]` (the form a GIN index
    serves), range → `BETWEEN` / `>=` / `<=`, and/or/not → SQL's. Literals are inlined and
    quoted (standard_conforming_strings), so the text is what a user's query would contain.
    """
    return sql_where(
        flt, schema, ident=_ident, lit=_lit,
        contains=lambda col, v: f"{col} @> ARRAY[{v}]::text[]",
    )


class PgVector(System):
    """PostgreSQL 16 + pgvector 0.6 (pgserver), HNSW vector_ip_ops, SQL WHERE filters."""

    name = "pgvector"
    param_names = ("ef",)
    thread_safe: ClassVar[bool] = False  # one connection

    def __init__(self, workdir: Path, **build_params: Any) -> None:
        super().__init__(workdir, **build_params)
        with warnings.catch_warnings():
            # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset (it then
            # keeps pgserver's lock file under /tmp/runtime-<uid>); harmless here.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            self._pgserver = require("pgserver", "pgserver")
        self._psycopg = require("psycopg", "psycopg[binary]")
        self._pgv = require("pgvector.psycopg", "pgvector")
        self._schema: dict[str, str] = {}
        self._server: Any = None
        self._conn: Any = None
        self._ef: int | None = None

    def _start(self) -> None:
        pgdata = self.workdir / "pgdata"
        pgdata.mkdir(parents=True, exist_ok=True)
        self._server = self._pgserver.get_server(pgdata, cleanup_mode="stop")
        self._conn = self._psycopg.connect(self._server.get_uri(), autocommit=True)
        self._conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        self._pgv.register_vector(self._conn)
        self._ef = None

    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        self._schema = table.schema
        key = build_key(self.name, "pgserver", base, table, self.build_params)
        done = read_build_marker(self.workdir, key) if self.build_params.get("reuse", True) else None
        if done is not None:  # the same data and parameters were built here before: reopen
            self._start()
            self.search(base[0], None, 1)
            return BuildInfo(seconds=float(done["seconds"]), disk_bytes=dir_bytes(self.workdir),
                             cached=True, extra=done["extra"])
        (self.workdir / MARKER).unlink(missing_ok=True)
        shutil.rmtree(self.workdir / "pgdata", ignore_errors=True)
        dim = int(base.shape[1])
        t0 = time.perf_counter()
        self._start()
        conn = self._conn
        names = list(table.columns)
        cols = ", ".join(f"{_ident(c)} {_SQL_TYPES[table.columns[c].kind]} NOT NULL"
                         for c in names)
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, "
                     f"embedding vector({dim}) NOT NULL, {cols})")
        types = ["bigint", "vector", *(_SQL_TYPES[table.columns[c].kind] for c in names)]
        col_list = ", ".join(["id", "embedding", *(_ident(c) for c in names)])
        with conn.cursor() as cur, cur.copy(
            f"COPY {TABLE} ({col_list}) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(types)
            vecs = np.ascontiguousarray(base, dtype=np.float32)
            for i, attrs in enumerate(table.rows()):
                copy.write_row([i, vecs[i], *(attrs[c] for c in names)])
        load_s = time.perf_counter() - t0
        conn.execute(f"SET maintenance_work_mem = '{self.build_params.get('work_mem', '2GB')}'")
        m = int(self.build_params.get("m", 16))
        efc = int(self.build_params.get("ef_construction", 200))
        conn.execute(f"CREATE INDEX ON {TABLE} USING hnsw (embedding vector_ip_ops) "
                     f"WITH (m = {m}, ef_construction = {efc})")
        if self.build_params.get("scalar_indexes", True):
            for c, kind in self._schema.items():
                method = "gin" if kind == "keyword_list" else "btree"
                conn.execute(f"CREATE INDEX ON {TABLE} USING {method} ({_ident(c)})")
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        self.search(base[0], None, 1)
        seconds = time.perf_counter() - t0
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                               ).fetchone()[0]
        extra = {"version": f"pgvector {version}", "pgserver": peer_version("pgserver"),
                 "postgres": conn.execute("SHOW server_version").fetchone()[0],
                 "index": f"hnsw vector_ip_ops m={m} ef_construction={efc}",
                 "load_seconds": load_s}
        write_build_marker(self.workdir, key, seconds, extra)
        return BuildInfo(seconds=seconds, disk_bytes=dir_bytes(self.workdir), extra=extra)

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        ef = min(1000, max(k, int(self.query_params.get("ef", 40))))
        if ef != self._ef:  # session setting; changes only between sweep points
            self._conn.execute(f"SET hnsw.ef_search = {ef}")
            self._ef = ef
        where = to_pg_where(flt, self._schema)
        sql = (f"SELECT id FROM {TABLE}{' WHERE ' + where if where else ''} "
               f"ORDER BY embedding <#> %s LIMIT {int(k)}")
        rows = self._conn.execute(sql, (np.asarray(q, dtype=np.float32),)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.cleanup()
            self._server = None
