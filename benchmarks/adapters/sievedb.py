"""sievedb under test: in-process (`Engine`) and through its gRPC server (a separate process).

* `SievedbEngine` — `Engine.search` / `Engine.search_batch` in the benchmark process: the
  benchmark's filter → sievedb's filter objects (`to_sievedb_filter`), validation, resolution
  of the allowed set, the planner's strategy, the search, hit materialisation. The filter
  objects are built inside the timed call, as an embedding application builds them per query
  (and as each baseline turns the same filter into its mask inside its timed call). Until
  2026-12-03 this row also paid a round trip through the text language (`to_sievedb_expr` +
  `parse`), which no other system paid; the gRPC row still sends text, parsed on the server.
* `SievedbGrpc` — `sievedb serve` started as a SUBPROCESS on a loopback port over the same
  cached data directory; queried with `sievedb.Client.search` (filter sent as text; parsed on
  the server) and `Client.search_batch` (SearchBatch). Client and server do not share a GIL,
  so N concurrent client threads measure the server, not the benchmark process. The server's
  peak RSS (VmHWM) is reported in `BuildInfo.extra` / `stats()`.

Both load the collection once through `benchmarks.systems.sievedb_engine` (real write path,
batched `Engine.upsert`, checkpointed), cached by the vectors, the attribute table and the
index parameters. Every attribute of the table is indexed (what a user loading the whole
dataset would do).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmarks.adapters.base import BuildInfo, System, Unavailable, dir_bytes
from benchmarks.filterspec import AttributeTable, Filter, to_sievedb_expr

__all__ = ["SievedbEngine", "SievedbGrpc", "table_fingerprint"]

COLLECTION = "bench"
FIELD_TYPES = {
    "keyword": "KEYWORD", "keyword_list": "KEYWORD_LIST", "int": "INTEGER",
    "float": "FLOAT", "bool": "BOOLEAN", "datetime": "DATETIME",
}


def to_sievedb_filter(flt: Filter, schema: dict[str, str]) -> Any:
    """The filter as sievedb's filter objects, built directly with the combinators the text
    parser uses (so they equal `parse(to_sievedb_expr(...))`, which a test checks)."""
    from sievedb_server.filters.model import and_

    return and_(_condition_of(flt, schema))


def _condition_of(flt: Filter, schema: dict[str, str]) -> Any:
    from sievedb_server.filters.model import Filter as SFilter
    from sievedb_server.filters.model import Match, MatchAny, Range, and_, not_, or_

    op = flt[0]
    if op == "and":
        return and_(*(_condition_of(f, schema) for f in flt[1:]))
    if op == "or":
        return or_(*(_condition_of(f, schema) for f in flt[1:]))
    if op == "not":
        return not_(_condition_of(flt[1], schema))
    field = flt[1]

    def value(v: Any) -> Any:
        return datetime.fromtimestamp(int(v), UTC) if schema[field] == "datetime" else v

    if op in ("eq", "contains"):  # `contains` on a list field is a match of one of its values
        return Match(field, value(flt[2]))
    if op == "in":
        return MatchAny(field, tuple(value(v) for v in flt[2]))
    lo, hi = flt[2], flt[3]
    if lo is None and hi is None:
        return SFilter()
    return Range(field, gte=None if lo is None else value(lo),
                 lte=None if hi is None else value(hi))


def table_fingerprint(table: AttributeTable) -> str:
    """A content hash of every column (part of the cache key of a loaded collection)."""
    h = hashlib.sha256()
    for name, col in table.columns.items():
        h.update(f"{name}:{col.kind}:{len(col)}".encode())
        h.update(np.ascontiguousarray(col.values).tobytes())
        if col.indptr is not None:
            h.update(np.ascontiguousarray(col.indptr).tobytes())
        if col.vocab is not None:
            h.update("\x00".join(col.vocab).encode())
    return h.hexdigest()[:16]


def _records(table: AttributeTable) -> Any:
    schema = table.schema
    dt_fields = [f for f, kind in schema.items() if kind == "datetime"]

    def records(start: int, stop: int) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for row in table.rows(start, stop):
            for f in dt_fields:
                row[f] = datetime.fromtimestamp(int(row[f]), UTC)
            out.append(row)
        return out

    return records


def _load_engine(base: np.ndarray, table: AttributeTable, build_params: dict[str, Any],
                 cache_dir: Path) -> tuple[Any, dict[str, Any]]:
    try:
        from sievedb_server.core.types import FieldSpec, FieldType
    except ImportError as exc:  # the server extra is not installed
        raise Unavailable(f"sievedb server modules are not importable: {exc}") from exc
    from benchmarks.systems import sievedb_engine

    schema = tuple(FieldSpec(f, FieldType[FIELD_TYPES[kind]]) for f, kind in table.schema.items())
    return sievedb_engine(
        COLLECTION, np.ascontiguousarray(base, dtype=np.float32),
        m=int(build_params.get("m", 16)),
        ef_construction=int(build_params.get("ef_construction", 200)),
        schema=schema, records=_records(table), batch=int(build_params.get("batch", 5000)),
        cache_dir=cache_dir, extra_key=table_fingerprint(table),
    )


def _build_info(info: dict[str, Any], data_dir: Path) -> BuildInfo:
    return BuildInfo(
        seconds=float(info["seconds"]) + float(info.get("checkpoint_seconds", 0.0)),
        disk_bytes=dir_bytes(data_dir), cached=bool(info.get("cached")),
        extra={"threads": info.get("threads"), "batch": info.get("batch")},
    )


class SievedbEngine(System):
    """sievedb in-process: `Engine.search` with a filter translated and parsed per query."""

    name = "sievedb"
    param_names = ("ef",)
    thread_safe: ClassVar[bool] = True
    has_batch: ClassVar[bool] = True

    def __init__(self, workdir: Path, **build_params: Any) -> None:
        super().__init__(workdir, **build_params)
        self.cache_dir = Path(build_params.get("cache_dir", workdir))
        self.engine: Any = None
        self.strategies: Counter[str] = Counter()

    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        self.schema = table.schema
        self.engine, info = _load_engine(base, table, self.build_params, self.cache_dir)
        return _build_info(info, self.engine.data_dir)

    def check_counts(self, filters: list[Filter | None], counts: list[int]) -> None:
        """Raise if sievedb's count of any filter differs from the numpy count (semantics)."""
        bad = [(f, c, got) for f, c in zip(filters, counts, strict=True)
               if (got := self.engine.count(COLLECTION, self._filter(f))) != c]
        if bad:
            raise RuntimeError(f"sievedb and numpy disagree on {len(bad)} filters, e.g. {bad[:3]}")

    def _params(self, k: int) -> Any:
        from sievedb_server.core.types import SearchParams

        return SearchParams(k=k, ef=self.query_params.get("ef"), with_attributes=False,
                            explain=True)

    def _filter(self, flt: Filter | None) -> Any:
        return None if flt is None else to_sievedb_filter(flt, self.schema)

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        res = self.engine.search(COLLECTION, q, self._params(k), self._filter(flt))
        if res.plan is not None:
            self.strategies[res.plan.strategy] += 1
        return np.fromiter((int(h.id) for h in res.hits), dtype=np.int64)

    def search_batch(self, qs: np.ndarray, flts: Any, k: int) -> list[np.ndarray]:
        parsed = [self._filter(f) for f in flts]
        results = self.engine.search_batch(COLLECTION, qs, self._params(k), parsed)
        return [np.fromiter((int(h.id) for h in r.hits), dtype=np.int64) for r in results]

    def stats(self) -> dict[str, Any]:
        """Plan strategies chosen since the last call (and reset)."""
        out = {"strategies": dict(self.strategies.most_common())}
        self.strategies.clear()
        return out

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close(checkpoint=False)
            self.engine = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vm_hwm_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class SievedbGrpc(System):
    """sievedb through gRPC: `sievedb serve` in a subprocess, `Client` on loopback."""

    name = "sievedb_grpc"
    param_names = ("ef",)
    thread_safe: ClassVar[bool] = True
    has_batch: ClassVar[bool] = True

    def __init__(self, workdir: Path, **build_params: Any) -> None:
        super().__init__(workdir, **build_params)
        self.cache_dir = Path(build_params.get("cache_dir", workdir))
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Any = None

    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        from sievedb import Client

        self.schema = table.schema
        engine, info = _load_engine(base, table, self.build_params, self.cache_dir)
        data_dir = Path(engine.data_dir)
        engine.close()  # the server process owns the data directory from here on
        build = _build_info(info, data_dir)
        port = _free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "server.log", "wb")  # noqa: SIM115 - closed in close()
        self._log = log
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with_time = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sievedb.cli", "serve", "--data-dir", str(data_dir),
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        self.client = Client(f"127.0.0.1:{port}", timeout=600.0)
        deadline = time.monotonic() + 300.0
        while True:
            try:
                self.client.count(COLLECTION)
                break
            except Exception as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    tail = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
                    raise Unavailable(f"sievedb serve did not come up ({exc}): {tail}") from exc
                time.sleep(0.2)
        build.extra["server_open_seconds"] = time.perf_counter() - with_time
        return build

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        text = None if flt is None else to_sievedb_expr(flt, self.schema)
        hits = self.client.search(COLLECTION, q, k=k, filter=text,
                                  ef=self.query_params.get("ef"), with_attributes=False)
        return np.fromiter((int(h.id) for h in hits), dtype=np.int64)

    def search_batch(self, qs: np.ndarray, flts: Any, k: int) -> list[np.ndarray]:
        texts = [None if f is None else to_sievedb_expr(f, self.schema) for f in flts]
        results = self.client.search_batch(COLLECTION, qs, k, filters=texts,
                                           ef=self.query_params.get("ef"),
                                           with_attributes=False)
        return [np.fromiter((int(h.id) for h in r), dtype=np.int64) for r in results]

    def stats(self) -> dict[str, Any]:
        return {"server_peak_rss_bytes": _vm_hwm_bytes(self.proc.pid) if self.proc else None}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self._log.close()
