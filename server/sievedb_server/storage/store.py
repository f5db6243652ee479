"""One collection's LMDB environment: the source of truth (see `layout` for the keys).

`CollectionStore` opens the environment and hands out transactions plus typed accessors. It
knows nothing of indexes; `core.collection` orchestrates. One write transaction per request
batch; LMDB serialises writers and gives readers a consistent snapshot without blocking.

Map size and "store full" (decided). LMDB needs a map size: the most the file may hold. We
do NOT grow the map at run time. `Environment.set_mapsize` replaces the memory map, which is
only safe with no transaction open anywhere in the process (LMDB does not check; py-lmdb
invalidates open transactions and any `buffers=True` view into the old map dangles), and a
serving collection always has readers (searches, gets, scrolls, snapshots) on many threads:
a stop-the-world gate around every transaction would cost every read for a rare event.
Instead the map is a large *virtual* reservation and the file grows with the data (no
`writemap`, so nothing is preallocated), which makes the map effectively unbounded:

* without a cap, the map is `DEFAULT_MAP_SIZE` (1 TiB of address space per collection, not
  memory and not disk; x86-64 gives a process 128 TiB, so this bounds a server to ~100
  collections unless a cap is set) and the real limit is the disk;
* with a per-store cap (`max_bytes`, `sievedb serve --max-store-mb`), a write that would
  leave more than `max_bytes` of pages in use (summed over the collection's databases,
  free pages excluded) is refused, and the map is `max_bytes + headroom(max_bytes)`: the
  headroom lets deletes, checkpoints (which trim the write log) and index rebuilds still
  commit when the data has reached the cap, since LMDB copies pages on write and even a
  delete needs free pages. Deleting points therefore makes room again; raising the cap
  needs a restart.

Every way of running out of space surfaces as `StoreFull` (RESOURCE_EXHAUSTED): LMDB's
MDB_MAP_FULL (raised by the `put` that needs a page, or at commit while saving the free
list; the transaction is then unusable and is aborted), and ENOSPC / EFBIG / EDQUOT from
the OS (LMDB reports them from commit, after which LMDB has aborted the transaction and
the last committed state is intact; the vector file reports them when it reserves blocks).
LMDB reports a *short* write as EIO, which is what a write that reaches the end of the
disk (or RLIMIT_FSIZE) usually is; an EIO from commit counts as "full" only when the
filesystem has under `LOW_SPACE_BYTES` free or a file of the store is at the size limit,
otherwise it stays an unexpected I/O error.
Callers translate with `raise_if_full` / `full_errors()` and update in-memory state only
after a successful commit, so a refused write changes nothing.
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lmdb
import numpy as np

from sievedb_server.core.types import Attributes, CollectionSpec, PointId
from sievedb_server.errors import CorruptData, StoreFull
from sievedb_server.storage import layout, serde

__all__ = [
    "DEFAULT_MAP_SIZE",
    "CollectionStore",
    "full_errors",
    "headroom",
    "is_full_error",
    "no_room_left",
    "raise_if_full",
]

DEFAULT_MAP_SIZE = 1 << 40  # virtual address space only; the file grows with the data
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
MIN_HEADROOM = 16 << 20
LOW_SPACE_BYTES = 64 << 20  # an EIO with less free space than this is a short write


def headroom(max_bytes: int) -> int:
    """Map space beyond a cap kept for deletes, checkpoints and rebuilds (see module doc)."""
    return max(max_bytes // 8, MIN_HEADROOM)


def is_full_error(exc: BaseException, folder: Path | None = None) -> bool:
    """True for LMDB's map-full and for the OS's no-space / file-too-large errors.

    With `folder` (the store's), an LMDB EIO counts too when space there has run out.
    """
    if isinstance(exc, lmdb.MapFullError):
        return True
    if isinstance(exc, lmdb.Error):
        code = getattr(exc, "code", 0)
        if code == errno.EIO and folder is not None:
            return no_room_left(folder)
        return code in FULL_ERRNOS
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


def no_room_left(folder: Path) -> bool:
    """Whether the filesystem holding `folder`, or this process's file-size limit, is spent."""
    try:
        st = os.statvfs(folder)
        if st.f_bavail * st.f_frsize < LOW_SPACE_BYTES:
            return True
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft == resource.RLIM_INFINITY:
            return False
        biggest = max((p.stat().st_size for p in folder.iterdir() if p.is_file()), default=0)
        return biggest >= soft - (1 << 20)
    except OSError:
        return False


def raise_if_full(exc: BaseException, what: str = "the store", folder: Path | None = None) -> None:
    """Raise `StoreFull` (RESOURCE_EXHAUSTED) from `exc` if it means space ran out.

    For `except` clauses that have aborted their transaction: `raise_if_full(exc); raise`.
    `folder` lets an LMDB EIO (a short write) count when the disk there is full.
    """
    if isinstance(exc, (lmdb.Error, OSError)) and is_full_error(exc, folder):
        raise StoreFull(f"{what} is full: {exc}") from exc


@contextmanager
def full_errors(what: str = "the store", folder: Path | None = None) -> Iterator[None]:
    """Re-raise running out of space inside the block as `StoreFull` (see `raise_if_full`)."""
    try:
        yield
    except Exception as exc:
        raise_if_full(exc, what, folder)
        raise


class CollectionStore:
    def __init__(self, path: Path, *, sync: bool = True, max_bytes: int = 0) -> None:
        """Open (or create) the environment in `path`; `max_bytes` > 0 caps the data it holds."""
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        map_size = max_bytes + headroom(max_bytes) if max_bytes else DEFAULT_MAP_SIZE
        try:
            self.env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=len(layout.DB_NAMES) + 4,
                sync=sync,
                metasync=sync,
                readahead=False,
                max_readers=512,
            )
        except lmdb.Error as exc:
            raise CorruptData(f"cannot open store at {path}: {exc}") from exc
        self.db = {name: self.env.open_db(name.encode()) for name in layout.DB_NAMES}
        self.page_size = int(self.env.stat()["psize"])

    def close(self) -> None:
        self.env.close()

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    # -- transactions --------------------------------------------------------------------

    def read(self) -> lmdb.Transaction:
        return self.env.begin(write=False, buffers=True)

    def write(self) -> lmdb.Transaction:
        return self.env.begin(write=True)

    def commit(self, txn: lmdb.Transaction) -> None:
        """Commit; on failure LMDB has already aborted `txn` and the last commit stands."""
        with full_errors(folder=self.path):
            txn.commit()

    def used_bytes(self, txn: lmdb.Transaction) -> int:
        """Bytes of pages the collection's databases use as `txn` sees them (free pages excluded)."""
        pages = 0
        for db in self.db.values():
            st = txn.stat(db)
            pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        return pages * self.page_size

    def check_room(self, txn: lmdb.Transaction) -> None:
        """Raise `StoreFull` if `txn` would leave more than the cap in use (call before commit).

        Only writes that add data call this; deletes and maintenance may use the headroom.
        """
        if not self.max_bytes:
            return
        used = self.used_bytes(txn)
        if used > self.max_bytes:
            raise StoreFull(
                f"store {self.path.parent.name} would hold {used} bytes, over its cap of "
                f"{self.max_bytes}; the write was not applied (delete points or raise the cap)"
            )

    # -- meta ----------------------------------------------------------------------------

    def init_meta(self, txn: lmdb.Transaction, spec: CollectionSpec) -> None:
        meta = self.db["meta"]
        txn.put(layout.META_FORMAT, layout.encode_u64(layout.FORMAT_VERSION), db=meta)
        txn.put(layout.META_SPEC, serde.pack_spec(spec), db=meta)
        txn.put(layout.META_WATERMARK, layout.encode_u64(0), db=meta)
        txn.put(layout.META_NEXT_LABEL, layout.encode_u64(0), db=meta)

    def spec(self, txn: lmdb.Transaction) -> CollectionSpec | None:
        raw = txn.get(layout.META_SPEC, db=self.db["meta"])
        return None if raw is None else serde.unpack_spec(bytes(raw))

    def put_spec(self, txn: lmdb.Transaction, spec: CollectionSpec) -> None:
        txn.put(layout.META_SPEC, serde.pack_spec(spec), db=self.db["meta"])

    def _meta_u64(self, txn: lmdb.Transaction, key: bytes) -> int:
        raw = txn.get(key, db=self.db["meta"])
        if raw is None:
            raise CorruptData(f"store {self.path} lacks meta key {key!r}")
        return layout.decode_u64(bytes(raw))

    def watermark(self, txn: lmdb.Transaction) -> int:
        return self._meta_u64(txn, layout.META_WATERMARK)

    def next_label(self, txn: lmdb.Transaction) -> int:
        return self._meta_u64(txn, layout.META_NEXT_LABEL)

    def set_counters(self, txn: lmdb.Transaction, watermark: int, next_label: int) -> None:
        meta = self.db["meta"]
        txn.put(layout.META_WATERMARK, layout.encode_u64(watermark), db=meta)
        txn.put(layout.META_NEXT_LABEL, layout.encode_u64(next_label), db=meta)

    def load_rows(self, txn: lmdb.Transaction, load_id: str) -> int | None:
        """Rows a resumable bulk load has committed (None if the load is unknown)."""
        raw = txn.get(layout.META_LOAD_PREFIX + load_id.encode(), db=self.db["meta"])
        return None if raw is None else layout.decode_u64(bytes(raw))

    def set_load_rows(self, txn: lmdb.Transaction, load_id: str, rows: int) -> None:
        txn.put(layout.META_LOAD_PREFIX + load_id.encode(), layout.encode_u64(rows),
                db=self.db["meta"])

    # -- points --------------------------------------------------------------------------

    def label_of(self, txn: lmdb.Transaction, pid: PointId) -> int | None:
        raw = txn.get(layout.encode_point_id(pid), db=self.db["ids"])
        return None if raw is None else layout.decode_label(bytes(raw))

    def label_of_key(self, txn: lmdb.Transaction, id_key: bytes) -> int | None:
        """`label_of` for an id already encoded with `layout.encode_point_id`."""
        raw = txn.get(id_key, db=self.db["ids"])
        return None if raw is None else layout.decode_label(bytes(raw))

    def id_of(self, txn: lmdb.Transaction, label: int) -> PointId | None:
        raw = txn.get(layout.encode_label(label), db=self.db["labels"])
        return None if raw is None else layout.decode_point_id(bytes(raw))

    def put_point(
        self,
        txn: lmdb.Transaction,
        label: int,
        pid: PointId,
        vector: bytes,
        attrs: Attributes | None,
        *,
        is_new: bool,
    ) -> None:
        key = layout.encode_label(label)
        if is_new:
            txn.put(layout.encode_point_id(pid), key, db=self.db["ids"])
            txn.put(key, layout.encode_point_id(pid), db=self.db["labels"])
        txn.put(key, vector, db=self.db["vectors"])
        if attrs:
            txn.put(key, serde.pack_attributes(attrs), db=self.db["attrs"])
        else:
            txn.delete(key, db=self.db["attrs"])

    def put_points_bulk(
        self,
        txn: lmdb.Transaction,
        labels: np.ndarray,
        id_keys: list[bytes],
        vectors: np.ndarray,
        attrs: list[bytes | None],
        new: np.ndarray,
    ) -> None:
        """`put_point` for a whole chunk with cursor `putmulti` (bulk-load path).

        `id_keys` are the point ids encoded with `layout.encode_point_id`; `attrs` holds packed attributes (`serde.pack_attributes`) or None; `new` marks rows
        whose label was just assigned (labels of new rows are increasing and above every
        stored label, so they are appended at the end of the label-keyed databases).
        """
        keys = [layout.encode_label(int(lb)) for lb in labels.tolist()]
        rows = [vectors[i].tobytes() for i in range(len(keys))]
        new_idx = np.flatnonzero(new).tolist()
        if new_idx:
            with txn.cursor(db=self.db["ids"]) as cur:
                cur.putmulti([(id_keys[i], keys[i]) for i in new_idx])
            with txn.cursor(db=self.db["labels"]) as cur:
                cur.putmulti([(keys[i], id_keys[i]) for i in new_idx], append=True)
        old_idx = np.flatnonzero(~new).tolist()
        with txn.cursor(db=self.db["vectors"]) as cur:
            if old_idx:
                cur.putmulti([(keys[i], rows[i]) for i in old_idx])
            cur.putmulti([(keys[i], rows[i]) for i in new_idx], append=True)
        attr_db = self.db["attrs"]
        with txn.cursor(db=attr_db) as cur:
            cur.putmulti([(keys[i], a) for i, a in enumerate(attrs) if a])
        for i in old_idx:
            if not attrs[i]:
                txn.delete(keys[i], db=attr_db)

    def delete_point(self, txn: lmdb.Transaction, label: int, pid: PointId) -> None:
        key = layout.encode_label(label)
        txn.delete(layout.encode_point_id(pid), db=self.db["ids"])
        for name in ("labels", "vectors", "attrs"):
            txn.delete(key, db=self.db[name])

    def attributes(self, txn: lmdb.Transaction, label: int) -> Attributes | None:
        raw = txn.get(layout.encode_label(label), db=self.db["attrs"])
        return None if raw is None else serde.unpack_attributes(bytes(raw))

    def vector(self, txn: lmdb.Transaction, label: int) -> bytes | None:
        raw = txn.get(layout.encode_label(label), db=self.db["vectors"])
        return None if raw is None else bytes(raw)

    def iter_labels(self, txn: lmdb.Transaction, start: int = 0) -> Iterator[tuple[int, PointId]]:
        with txn.cursor(db=self.db["labels"]) as cur:
            if not cur.set_range(layout.encode_label(start)):
                return
            for key, value in cur:
                yield layout.decode_label(bytes(key)), layout.decode_point_id(bytes(value))

    def iter_vectors(
        self, txn: lmdb.Transaction, dim: int, chunk: int = 8192
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(labels, vectors) chunks in label order, for rebuilding derived structures."""
        labels: list[int] = []
        rows: list[bytes] = []
        with txn.cursor(db=self.db["vectors"]) as cur:
            for key, value in cur:
                labels.append(layout.decode_label(bytes(key)))
                rows.append(bytes(value))
                if len(labels) == chunk:
                    yield _chunk(labels, rows, dim)
                    labels, rows = [], []
        if labels:
            yield _chunk(labels, rows, dim)

    # -- write log (what the derived index must replay) ---------------------------------

    def append_log(self, txn: lmdb.Transaction, seq: int, labels: np.ndarray) -> None:
        txn.put(layout.encode_u64(seq), serde.pack_labels(labels), db=self.db["log"])

    def log_since(self, txn: lmdb.Transaction, after: int) -> tuple[int | None, np.ndarray]:
        """(first sequence number found > after, labels touched by writes after `after`)."""
        first: int | None = None
        parts: list[np.ndarray] = []
        with txn.cursor(db=self.db["log"]) as cur:
            if cur.set_range(layout.encode_u64(after + 1)):
                for key, value in cur:
                    seq = layout.decode_u64(bytes(key))
                    first = seq if first is None else first
                    parts.append(serde.unpack_labels(bytes(value)))
        labels = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
        return first, labels

    def truncate_log(self, txn: lmdb.Transaction, upto: int) -> None:
        with txn.cursor(db=self.db["log"]) as cur:
            while cur.first():
                if layout.decode_u64(bytes(cur.key())) > upto:
                    break
                cur.delete()


def _chunk(labels: list[int], rows: list[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(b"".join(rows), dtype="<f4")
    if data.size != len(rows) * dim:
        raise CorruptData("a stored vector has the wrong length")
    return np.asarray(labels, dtype=np.int64), data.reshape(len(rows), dim)
