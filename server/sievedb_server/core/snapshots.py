"""Online snapshots of a collection, and their restore into a new collection (any server).

Taking a snapshot (`create`) while the collection serves reads and writes:

1. Holding the collection's write mutex and index READ lock, as a checkpoint does (searches go
   on; writes wait), open an LMDB read transaction and save the HNSW graph into a staging
   folder stamped with that transaction's watermark W. Commits and the graph move together
   under the index WRITE lock, so the graph holds exactly the writes <= W (points not yet in it
   are "pending", which recovery re-derives from LMDB).
2. Release the lock and copy the LMDB environment with that same transaction
   (`Environment.copy(compact=True, txn=...)`): writers go on; the copy is exactly state W.
3. Write the manifest (spec, W, counts, sha256 per file) and the tar atomically under
   `<data>/snapshots/<collection>/<collection>-<UTC time>-<6 hex>.snapshot`, with a
   `sha256sum`-style `.sha256` file beside it.

Every write acknowledged before `create` was called has a watermark <= W, so the snapshot holds
it. `Collection.pinned()` keeps a concurrent drop or shutdown from closing the environment
under the copy.

Restoring (`restore_file`, `restore_snapshot`, `restore_upload`) verifies the archive
(`snapshot_archive.read_archive`: safe member names, sizes, checksums) into a hidden staging
folder under `collections/` (the engine deletes hidden folders on start, so a crash mid-restore
leaves nothing), renames the spec to the new collection name, derives the vector file from
LMDB, and only then renames the folder into place and opens it: the graph loads as is (its
stamp equals the LMDB watermark), so no rebuild. A collection of that name is replaced only
with `overwrite`; an alias name is refused. Aliases and other collections are not part of a
collection snapshot (the manifest lists the aliases that pointed at it, for the operator).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import lmdb

from sievedb_server.core.collection import Collection
from sievedb_server.core.snapshot_archive import (
    FILES,
    FileEntry,
    Manifest,
    fsync_dir,
    read_archive,
    read_manifest,
    sha256_file,
    write_archive,
)
from sievedb_server.core.types import CollectionInfo, validate_collection_name
from sievedb_server.errors import (
    CollectionExists,
    CorruptData,
    CorruptSnapshot,
    InvalidArgument,
    InvalidSnapshot,
    ShuttingDown,
    SieveError,
    SnapshotNotFound,
    StoreFull,
)
from sievedb_server.index.vectors import VectorArray
from sievedb_server.storage import layout
from sievedb_server.storage.store import CollectionStore

if TYPE_CHECKING:
    from sievedb_server.core.engine import Engine

__all__ = ["CHUNK_BYTES", "SnapshotInfo", "SnapshotService", "snapshots_of"]

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshots"
UPLOAD_DIR = ".uploads"
CHUNK_BYTES = 1 << 20  # download chunk; well under any gRPC message limit
_NAME_RE = re.compile(
    r"(?P<collection>[A-Za-z0-9_-]{1,64})-(?P<time>\d{8}T\d{6}Z)-[0-9a-f]{6}\.snapshot"
)
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    collection: str
    size_bytes: int
    sha256: str
    created_at: str  # RFC 3339, UTC
    watermark: int
    point_count: int


def _parse_name(name: str) -> re.Match[str]:
    """Snapshot names are also file names: anything else is refused before touching a path."""
    match = _NAME_RE.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise InvalidArgument(
            f"snapshot name {str(name)[:100]!r} is invalid: expected "
            "<collection>-<YYYYMMDDTHHMMSSZ>-<6 hex>.snapshot"
        )
    return match


class _NoTxnCopy(Exception):
    """`Environment.copy(txn=...)` is not available in this py-lmdb build."""


def _disk_errors(exc: OSError) -> SieveError | None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFull(f"no space left for the snapshot: {exc.strerror}")
    return None


class SnapshotService:
    """Snapshot operations on one engine's data folder (one per engine: `snapshots_of`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.root = engine.data_dir / SNAPSHOT_DIR
        self.uploads = self.root / UPLOAD_DIR
        self.root.mkdir(parents=True, exist_ok=True)
        # Left by a crash mid-create or mid-upload (nothing else writes hidden entries here).
        shutil.rmtree(self.uploads, ignore_errors=True)
        for stale in self.root.glob("*/.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)

    # -- create ----------------------------------------------------------------------------

    def create(self, collection: str) -> SnapshotInfo:
        """Snapshot `collection` (or an alias's target) while it keeps serving."""
        coll = self.engine._get(collection)
        now = datetime.now(UTC)
        name = f"{coll.name}-{now.strftime(_TIME_FORMAT)}-{secrets.token_hex(3)}.snapshot"
        folder = self.root / coll.name
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".tmp-{uuid.uuid4().hex[:12]}"
        archive = folder / name
        try:
            with coll.pinned():
                manifest = self._capture(coll, staging, now)
            digest = write_archive(archive, staging, manifest, sync=self.engine.sync)
            _sidecar(archive).write_text(f"{digest}  {name}\n")
        except OSError as exc:
            archive.unlink(missing_ok=True)
            mapped = _disk_errors(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        info = SnapshotInfo(
            name,
            coll.name,
            archive.stat().st_size,
            digest,
            manifest.created_at,
            manifest.watermark,
            manifest.points,
        )
        log.info(
            "snapshot %s of %s: watermark %d, %d points, %d bytes",
            name,
            coll.name,
            info.watermark,
            info.point_count,
            info.size_bytes,
        )
        return info

    def _capture(self, coll: Collection, staging: Path, now: datetime) -> Manifest:
        """Graph + LMDB copy at one watermark into `staging` (see the module docstring)."""
        staging.mkdir()
        try:
            facts = self._copy(coll, staging, hold_writes=False)
        except _NoTxnCopy:
            # py-lmdb built without its LMDB patch (LMDB_PURE or a system LMDB) cannot copy
            # from a given transaction: copy with writes held instead (consistent, not online).
            log.warning("lmdb cannot copy from a transaction here; %s waits for writes", coll.name)
            shutil.rmtree(staging / "store", ignore_errors=True)
            with coll._write_mutex:  # every watermark-moving commit takes it
                facts = self._copy(coll, staging, hold_writes=True)
        watermark, spec, next_label, points, models, store_format = facts
        if spec is None or store_format is None:
            raise CorruptData(f"collection {coll.name!r} has no spec or format in its store")
        files = {
            name: FileEntry((staging / name).stat().st_size, sha256_file(staging / name))
            for name in FILES
        }
        aliases = sorted(a.name for a in self.engine.aliases.list() if a.collection == coll.name)
        return Manifest(
            collection=coll.name,
            spec=spec,
            watermark=watermark,
            points=points,
            next_label=next_label,
            created_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            files=files,
            store_format=layout.decode_u64(bytes(store_format)),
            aliases=tuple(aliases),
            models=tuple(sorted(models)),
        )

    @staticmethod
    def _copy(coll: Collection, staging: Path, *, hold_writes: bool) -> tuple[Any, ...]:
        """Save the graph and copy LMDB into `staging`, both at the watermark read here."""
        env = coll.store.env
        # Same package, deliberate: the index lock is what makes graph and watermark agree.
        # Writers are held at the write mutex (as a checkpoint holds them), not queued on the
        # writer-preferring index lock, where they would also stall every new search.
        with coll._write_mutex, coll._index_lock.read():
            txn = env.begin(write=False)
            try:
                watermark = coll.store.watermark(txn)
                coll.graph.save_to(staging, watermark, sync=False)  # the archive is synced
            except BaseException:
                txn.abort()
                raise
        try:
            (staging / "store").mkdir()
            if hold_writes:
                env.copy(str(staging / "store"), compact=True)
            else:
                try:
                    env.copy(str(staging / "store"), compact=True, txn=txn)
                except TypeError as exc:
                    raise _NoTxnCopy() from exc
            spec = coll.store.spec(txn)
            next_label = coll.store.next_label(txn)
            points = int(txn.stat(coll.store.db["labels"])["entries"])
            with txn.cursor(db=coll.store.db["models"]) as cur:
                models = [
                    bytes(k)[len(layout.MODEL_PREFIX) :].decode()
                    for k in cur.iternext(keys=True, values=False)
                    if bytes(k).startswith(layout.MODEL_PREFIX)
                ]
            store_format = txn.get(layout.META_FORMAT, db=coll.store.db["meta"])
        finally:
            txn.abort()
        return watermark, spec, next_label, points, models, store_format

    # -- list, delete, read ----------------------------------------------------------------

    def _path(self, name: str) -> Path:
        match = _parse_name(name)
        path = self.root / match["collection"] / name
        if not path.is_file():
            raise SnapshotNotFound(f"snapshot {name!r} does not exist")
        return path

    def info(self, name: str) -> SnapshotInfo:
        return self._info(self._path(name))

    def _info(self, path: Path) -> SnapshotInfo:
        match = _parse_name(path.name)
        try:
            digest = _sidecar(path).read_text().split()[0]
        except (OSError, IndexError):
            digest = ""
        if not _HEX64.fullmatch(digest):  # sidecar lost: recompute (and keep) it
            digest = sha256_file(path)
            _sidecar(path).write_text(f"{digest}  {path.name}\n")
        try:
            manifest = read_manifest(path)
            created, watermark, points = manifest.created_at, manifest.watermark, manifest.points
        except (InvalidSnapshot, CorruptSnapshot):
            when = datetime.strptime(match["time"], _TIME_FORMAT).replace(tzinfo=UTC)
            created, watermark, points = when.isoformat().replace("+00:00", "Z"), 0, 0
        return SnapshotInfo(
            path.name,
            match["collection"],
            path.stat().st_size,
            digest,
            created,
            watermark,
            points,
        )

    def list(self, collection: str = "") -> list[SnapshotInfo]:
        """Snapshots of `collection` (or every one), oldest first; dropped collections' too."""
        if collection:
            validate_collection_name(collection)
            name = self.engine.aliases.resolve(collection)
            folder = self.root / name
            if not folder.is_dir():
                self.engine._get(name)  # NOT_FOUND unless the collection exists
                return []
            folders = [folder]
        else:
            folders = [p for p in sorted(self.root.iterdir()) if p.is_dir() and p.name[0] != "."]
        infos = [
            self._info(path)
            for folder in folders
            for path in folder.glob("*.snapshot")
            if _NAME_RE.fullmatch(path.name)
        ]
        return sorted(infos, key=lambda i: (i.created_at, i.name))

    def delete(self, name: str) -> bool:
        path = self._path(name)
        path.unlink()
        _sidecar(path).unlink(missing_ok=True)
        try:
            path.parent.rmdir()  # the last snapshot of that collection
        except OSError:
            pass
        log.info("deleted snapshot %s", name)
        return True

    def open(self, name: str) -> tuple[SnapshotInfo, BinaryIO]:
        """The snapshot's info and its archive opened for reading (a download)."""
        path = self._path(name)
        return self._info(path), open(path, "rb")

    def chunks(
        self, name: str, chunk_bytes: int = CHUNK_BYTES
    ) -> Iterator[tuple[SnapshotInfo | None, bytes]]:
        """(info, first chunk), then (None, chunk) until the end of the archive."""
        info, fh = self.open(name)
        with fh:
            yield info, fh.read(chunk_bytes)
            while block := fh.read(chunk_bytes):
                yield None, block

    # -- restore ---------------------------------------------------------------------------

    def check_target(self, collection: str, overwrite: bool) -> None:
        """Fail fast (before an upload) if `collection` cannot be restored into."""
        validate_collection_name(collection)
        if self.engine.aliases.resolve(collection) != collection:
            raise CollectionExists(f"{collection!r} is an alias; restore under another name")
        existing = self.engine._collections
        if not overwrite and collection in existing:
            raise CollectionExists(
                f"collection {collection!r} already exists (restore with overwrite to replace it)"
            )
        if collection not in existing:
            self.engine.limits.check("max_collections", len(existing) + 1)

    def restore_snapshot(
        self, name: str, collection: str, *, overwrite: bool = False
    ) -> tuple[CollectionInfo, SnapshotInfo]:
        """Restore a snapshot stored on this server into `collection`."""
        self.check_target(collection, overwrite)
        snap = self.info(name)
        info = self.restore_file(
            self._path(name), collection, overwrite=overwrite, expected_sha256=snap.sha256
        )
        return info, snap

    def restore_upload(
        self,
        chunks: Iterable[bytes],
        collection: str,
        *,
        overwrite: bool = False,
        expected_sha256: str = "",
    ) -> CollectionInfo:
        """Spool an uploaded archive to disk (bounded memory), then `restore_file` it."""
        self.check_target(collection, overwrite)
        if expected_sha256 and not _HEX64.fullmatch(expected_sha256.lower()):
            raise InvalidArgument("sha256 must be 64 hex digits")
        self.uploads.mkdir(parents=True, exist_ok=True)
        spool = self.uploads / f"{uuid.uuid4().hex}.part"
        try:
            with open(spool, "wb") as fh:
                fh.writelines(chunks)
            return self.restore_file(
                spool, collection, overwrite=overwrite, expected_sha256=expected_sha256
            )
        except OSError as exc:
            mapped = _disk_errors(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            spool.unlink(missing_ok=True)

    def restore_file(
        self,
        archive: Path,
        collection: str,
        *,
        overwrite: bool = False,
        expected_sha256: str = "",
    ) -> CollectionInfo:
        """Verify `archive` and install it as `collection` (all or nothing)."""
        self.check_target(collection, overwrite)
        if expected_sha256 and sha256_file(archive) != expected_sha256.lower():
            raise CorruptSnapshot(
                "the snapshot archive does not match its sha256 (damaged in transfer or storage)"
            )
        staging = self.engine.root / f".restore-{collection}-{uuid.uuid4().hex[:8]}"
        try:
            manifest = read_archive(archive, staging, sync=self.engine.sync)
            cap = self.engine.store_max_bytes
            if cap and manifest.files["store/data.mdb"].size > cap:
                raise StoreFull(
                    f"the snapshot's store holds {manifest.files['store/data.mdb'].size} bytes; "
                    f"this server caps a collection's store at {cap}"
                )
            self._prepare(staging, manifest, collection)
            info = self._install(staging, collection, overwrite)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info(
            "restored collection %s from a snapshot of %s (watermark %d, %d points)",
            collection,
            manifest.collection,
            manifest.watermark,
            manifest.points,
        )
        return info

    def _prepare(self, staging: Path, manifest: Manifest, collection: str) -> None:
        """Check the LMDB copy against the manifest, rename its spec, derive the vector file."""
        try:
            store = CollectionStore(staging / "store", sync=self.engine.sync)
        except CorruptData as exc:
            raise CorruptSnapshot(
                f"the snapshot's LMDB copy does not open: {exc.message}"
            ) from None
        try:
            with store.read() as txn:
                spec = store.spec(txn)
                watermark = store.watermark(txn)
                next_label = store.next_label(txn)
                points = int(txn.stat(store.db["labels"])["entries"])
            if (
                spec is None
                or (spec.dim, spec.metric, spec.hnsw)
                != (
                    manifest.spec.dim,
                    manifest.spec.metric,
                    manifest.spec.hnsw,
                )
                or (watermark, next_label, points)
                != (
                    manifest.watermark,
                    manifest.next_label,
                    manifest.points,
                )
            ):
                raise CorruptSnapshot("the snapshot's LMDB copy disagrees with its manifest")
            if spec.name != collection:
                txn = store.write()
                try:
                    store.put_spec(txn, replace(spec, name=collection))
                except BaseException:
                    txn.abort()
                    raise
                store.commit(txn)
            # The vector file is derived from LMDB (state W), which the graph stamp W matches.
            vectors = VectorArray(staging / "vectors.f32", spec.dim, next_label, keep_sqnorms=False)
            try:
                with store.read() as txn:
                    for labels, rows in store.iter_vectors(txn, spec.dim):
                        vectors.write(labels, rows)
            finally:
                vectors.close()
            if self.engine.sync:
                with open(staging / "vectors.f32", "rb+") as fh:
                    os.fsync(fh.fileno())
        except (lmdb.Error, CorruptData) as exc:
            raise CorruptSnapshot(f"the snapshot's LMDB copy is unreadable: {exc}") from None
        finally:
            store.close()

    def _install(self, staging: Path, collection: str, overwrite: bool) -> CollectionInfo:
        """Rename the verified folder into place and open it, under the engine's lock.

        With `overwrite`, the old collection is closed and renamed to a hidden folder first; a
        crash between the two renames loses the old one (it was being replaced) and leaves
        the snapshot to be restored again.
        """
        engine = self.engine
        trash: Path | None = None
        with engine._lock:
            if engine._closed:
                raise ShuttingDown("the engine is shutting down")
            self.check_target(collection, overwrite)
            final = engine.root / collection
            old = engine._collections.pop(collection, None)
            if old is not None:
                old.close(checkpoint=False)
                trash = engine.root / f".replaced-{collection}-{uuid.uuid4().hex[:8]}"
                old.folder.rename(trash)
            elif final.exists():  # a folder the engine never opened (no store): set aside
                trash = engine.root / f".stray-{collection}-{uuid.uuid4().hex[:8]}"
                final.rename(trash)
            staging.rename(final)
            if engine.sync:
                fsync_dir(engine.root)
            try:
                coll = Collection(
                    final,
                    sync=engine.sync,
                    planner=engine.planner,
                    store_max_bytes=engine.store_max_bytes,
                )
            except (CorruptData, lmdb.Error, OSError) as exc:
                final.rename(staging)  # removed by the caller; never visible
                raise CorruptSnapshot(f"the restored collection does not open: {exc}") from None
            engine._collections[collection] = coll
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return coll.info()


def _sidecar(archive: Path) -> Path:
    return archive.with_name(archive.name + ".sha256")


_services: weakref.WeakKeyDictionary[Engine, SnapshotService] = weakref.WeakKeyDictionary()
_services_lock = threading.Lock()


def snapshots_of(engine: Engine) -> SnapshotService:
    """The engine's one `SnapshotService` (its start-up cleanup must run once per engine)."""
    with _services_lock:
        service = _services.get(engine)
        if service is None:
            service = _services[engine] = SnapshotService(engine)
        return service
