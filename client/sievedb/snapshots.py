"""Client side of collection snapshots (a Client mixin).

    snap = db.create_snapshot("papers")              # taken online; stored on the server
    db.list_snapshots("papers")                      # [SnapshotInfo, ...], oldest first
    db.download_snapshot(snap.name, "backups/")      # streamed, sha256-checked, atomic
    db.restore_snapshot("backups/" + snap.name, "papers_copy")   # upload into a NEW collection
    db.restore_server_snapshot(snap.name, "papers_copy2")        # from the server's own copy
    db.delete_snapshot(snap.name)

A snapshot is one archive (LMDB copy + HNSW graph + manifest) that any sievedb server of the
same snapshot format can restore. Restores never overwrite an existing collection unless
`overwrite=True`. Streaming calls have no deadline by default (archives can be large).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb import _wire
from sievedb.errors import DataLoss, from_rpc_error
from sievedb.types import CollectionInfo

__all__ = ["SnapshotInfo", "SnapshotsMixin"]

_UNSET: Any = object()  # "use the client's default timeout"
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    collection: str
    size_bytes: int
    sha256: str
    created_at: str  # RFC 3339, UTC
    watermark: int  # the collection's write sequence number the snapshot holds
    point_count: int


def _snapshot(msg: pb.SnapshotInfo) -> SnapshotInfo:
    return SnapshotInfo(
        msg.name,
        msg.collection,
        msg.size_bytes,
        msg.sha256,
        msg.created_at,
        msg.watermark,
        msg.point_count,
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


class SnapshotsMixin:
    timeout: float | None
    metadata: tuple[tuple[str, str], ...]
    _stub: Any

    def _call(self, method: str, request: Any, timeout: Any) -> Any:  # provided by Client
        raise NotImplementedError

    def _snapshot_rpc(self, method: str, request: Any, timeout: Any) -> Any:
        return self._call(method, request, self.timeout if timeout is _UNSET else timeout)

    def create_snapshot(self, collection: str, *, timeout: Any = _UNSET) -> SnapshotInfo:
        """Snapshot `collection` (or an alias's target) on the server while it keeps serving.

        Holds every write acknowledged before the call (and possibly later ones).
        """
        req = pb.CreateSnapshotRequest(collection=collection)
        return _snapshot(self._snapshot_rpc("CreateSnapshot", req, timeout).snapshot)

    def list_snapshots(self, collection: str = "", *, timeout: Any = _UNSET) -> list[SnapshotInfo]:
        """Snapshots stored on the server, of `collection` or ("") of every collection."""
        reply = self._snapshot_rpc(
            "ListSnapshots", pb.ListSnapshotsRequest(collection=collection), timeout
        )
        return [_snapshot(s) for s in reply.snapshots]

    def delete_snapshot(self, name: str, *, timeout: Any = _UNSET) -> bool:
        return bool(
            self._snapshot_rpc(
                "DeleteSnapshot", pb.DeleteSnapshotRequest(name=name), timeout
            ).deleted
        )

    def download_snapshot(
        self, name: str, path: str | os.PathLike[str], *, timeout: float | None = None
    ) -> Path:
        """Stream snapshot `name` to `path` (a directory gets `<path>/<name>`); returns the file.

        Written to `<file>.part`, checked against the server's size and sha256, then renamed:
        a failed or damaged download never leaves a file that looks complete.
        """
        target = Path(path)
        if target.is_dir():
            if not name or Path(name).name != name or name in (".", ".."):
                raise _wire.local_error(f"snapshot name {name!r} is not a plain file name")
            target = target / name
        part = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        size = 0
        info: SnapshotInfo | None = None
        try:
            stream = self._stub.DownloadSnapshot(
                pb.DownloadSnapshotRequest(name=name),
                timeout=timeout,
                metadata=self.metadata or None,
            )
            first = next(stream)  # the server's answer (or error) before any file is created
            with open(part, "wb") as fh:
                for chunk in itertools.chain([first], stream):
                    if chunk.HasField("snapshot"):
                        info = _snapshot(chunk.snapshot)
                    digest.update(chunk.data)
                    size += len(chunk.data)
                    fh.write(chunk.data)
            if info is None or size != info.size_bytes or digest.hexdigest() != info.sha256:
                raise DataLoss(
                    f"downloaded snapshot {name!r} does not match the server's size and sha256",
                    code=grpc.StatusCode.DATA_LOSS,
                    reason="CORRUPT_SNAPSHOT",
                )
            os.replace(part, target)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            part.unlink(missing_ok=True)
        return target

    def restore_snapshot(
        self,
        path: str | os.PathLike[str],
        collection: str,
        *,
        overwrite: bool = False,
        chunk_bytes: int = CHUNK_BYTES,
        timeout: float | None = None,
    ) -> CollectionInfo:
        """Upload the snapshot archive at `path` and restore it as the NEW collection `collection`.

        The server checks the archive against its sha256 (computed here first) and every file
        against the manifest; the collection appears only once all of it is in place. An
        existing collection of that name is replaced only with `overwrite`.
        """
        source = Path(path)
        if chunk_bytes <= 0:
            raise _wire.local_error(f"chunk_bytes must be positive, got {chunk_bytes}")
        try:
            expected = _file_sha256(source)
        except OSError as exc:
            raise _wire.local_error(f"cannot read snapshot {source}: {exc.strerror}") from None

        def requests() -> Iterator[pb.RestoreSnapshotRequest]:
            yield pb.RestoreSnapshotRequest(
                collection=collection, overwrite=overwrite, sha256=expected
            )
            with open(source, "rb") as fh:
                while block := fh.read(chunk_bytes):
                    yield pb.RestoreSnapshotRequest(data=block)

        try:
            reply = self._stub.RestoreSnapshot(
                requests(), timeout=timeout, metadata=self.metadata or None
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return _wire.decode_info(reply.info)

    def restore_server_snapshot(
        self,
        name: str,
        collection: str,
        *,
        overwrite: bool = False,
        timeout: float | None = None,
    ) -> CollectionInfo:
        """Restore snapshot `name`, stored on the server, as the collection `collection`."""
        request = pb.RestoreSnapshotRequest(
            collection=collection, snapshot=name, overwrite=overwrite
        )
        try:
            reply = self._stub.RestoreSnapshot(
                iter([request]), timeout=timeout, metadata=self.metadata or None
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return _wire.decode_info(reply.info)
