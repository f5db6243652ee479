"""Server-side imports: the engine reads a file it can see, as a long-running operation.

For files too large to stream comfortably, `Engine.start_import` reads the file on the server
with the same readers (`sievedb.readers`, pure numpy; pyarrow / h5py when the format needs
them) and the same per-chunk validation and durability as a client bulk load. The import is a
resumable load: its `load_id` (derived from the path, size and modification time unless given)
records committed rows in LMDB with each chunk, so starting the same import again after a crash
or a failure continues after the last durable chunk. Operation records live in memory only:
after a restart, start the import again to resume it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sievedb_server.errors import InvalidArgument, SieveError

if TYPE_CHECKING:
    from sievedb_server.core.engine import Engine

__all__ = ["ImportOperation", "ImportSource", "Importer", "default_load_id"]

log = logging.getLogger(__name__)

DEFAULT_IMPORT_BATCH = 8192


@dataclass(frozen=True)
class ImportSource:
    path: str
    format: str = ""
    vector_column: str = ""
    id_column: str = ""
    attribute_columns: tuple[str, ...] = ()
    attributes_path: str = ""
    ids_path: str = ""
    dataset: str = ""
    limit: int = 0
    id_type: str = ""


@dataclass
class ImportOperation:
    id: str
    collection: str
    load_id: str
    state: str = "RUNNING"  # RUNNING, SUCCEEDED, FAILED
    rows_done: int = 0
    rows_total: int = 0
    error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> ImportOperation:
        with self._lock:
            return replace(self, _lock=threading.Lock())


def default_load_id(path: str | os.PathLike[str], extra: str = "") -> str:
    """A load id naming this exact file version: absolute path, size and mtime (+ options)."""
    p = Path(path).resolve()
    st = p.stat()
    digest = hashlib.sha256(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0{extra}".encode()).hexdigest()
    return f"file-{digest[:20]}"


class Importer:
    """Runs imports on background threads and keeps their operation records."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ops: dict[str, ImportOperation] = {}
        self._lock = threading.Lock()

    def start(
        self, collection: str, source: ImportSource, load_id: str = "", batch_size: int = 0
    ) -> ImportOperation:
        try:
            from sievedb.readers import SourceError, open_source
        except ImportError as exc:  # pragma: no cover - one distribution ships both
            raise InvalidArgument(f"server-side import is unavailable: {exc}") from None
        coll = self.engine._get(collection)
        if not source.path:
            raise InvalidArgument("import: the source path is empty")
        try:
            reader = open_source(
                source.path,
                format=source.format or None,
                vector_column=source.vector_column or "vector",
                id_column=source.id_column or None,
                attribute_columns=source.attribute_columns,
                attributes_path=source.attributes_path or None,
                ids_path=source.ids_path or None,
                id_type=source.id_type,
                dataset=source.dataset or "train",
            )
        except (SourceError, OSError) as exc:
            raise InvalidArgument(f"import: {exc}") from None
        if reader.dim != coll.dim:
            reader.close()
            raise InvalidArgument(
                f"import: {source.path} has dim {reader.dim}, collection {collection!r} has "
                f"dim {coll.dim}"
            )
        if not load_id:
            load_id = default_load_id(source.path, repr(source))
        total = reader.rows if not source.limit else min(reader.rows, source.limit)
        op = ImportOperation(uuid.uuid4().hex, collection, load_id, rows_total=total)
        with self._lock:
            self._ops[op.id] = op
        thread = threading.Thread(
            target=self._run,
            args=(op, reader, source, batch_size or DEFAULT_IMPORT_BATCH, SourceError),
            daemon=True,
            name=f"sievedb-import-{op.id[:8]}",
        )
        thread.start()
        return op.snapshot()

    def get(self, op_id: str) -> ImportOperation | None:
        with self._lock:
            op = self._ops.get(op_id)
        return None if op is None else op.snapshot()

    def _run(
        self, op: ImportOperation, reader: Any, source: ImportSource, batch: int,
        source_error: type[Exception],
    ) -> None:
        try:
            with reader:
                start = self.engine.load_rows(op.collection, op.load_id) or 0
                with op._lock:
                    op.rows_done = start
                for chunk in reader.chunks(batch, start, source.limit or None):
                    self.engine.bulk_upsert(
                        op.collection, chunk.ids, chunk.vectors, chunk.attributes,
                        load_id=op.load_id, offset=chunk.offset,
                    )
                    with op._lock:
                        op.rows_done = chunk.offset + len(chunk.ids)
            with op._lock:
                op.state = "SUCCEEDED"
        except source_error as exc:
            self._fail(op, f"SOURCE_ERROR: {exc}")
        except SieveError as exc:
            self._fail(op, f"{exc.reason}: {exc.message}")
        except Exception as exc:
            log.exception("import %s failed", op.id)
            self._fail(op, f"INTERNAL: {type(exc).__name__}")

    @staticmethod
    def _fail(op: ImportOperation, message: str) -> None:
        with op._lock:
            op.state, op.error = "FAILED", message
        log.warning("import %s into %s failed: %s", op.id, op.collection, message)
