"""The snapshot RPCs of `sievedb.v1.SieveDB` (a mixin of the servicer; thin).

Create / list / delete map one to one onto `core.snapshots.SnapshotService`. Download streams
the archive in `CHUNK_BYTES` chunks, the first carrying the snapshot's size and sha256.
Restore is client-streamed: the first message names the target (and optionally a server-side
snapshot); the rest carry the uploaded archive, spooled to disk by the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb_server.core.snapshots import SnapshotService, snapshots_of
from sievedb_server.errors import InvalidArgument
from sievedb_server.limits import DEFAULT_LIMITS
from sievedb_server.transport import codec
from sievedb_server.transport.snapshot_codec import encode_snapshot_info
from sievedb_server.transport.streams import IdleTimeoutStream

if TYPE_CHECKING:
    import grpc

    from sievedb_server.core.engine import Engine

__all__ = ["SnapshotServicerMixin"]


class SnapshotServicerMixin:
    engine: Engine

    @property
    def _snapshots(self) -> SnapshotService:
        return snapshots_of(self.engine)

    def CreateSnapshot(
        self, request: pb.CreateSnapshotRequest, context: grpc.ServicerContext
    ) -> pb.CreateSnapshotResponse:
        info = self._snapshots.create(request.collection)
        return pb.CreateSnapshotResponse(snapshot=encode_snapshot_info(info))

    def ListSnapshots(
        self, request: pb.ListSnapshotsRequest, context: grpc.ServicerContext
    ) -> pb.ListSnapshotsResponse:
        infos = self._snapshots.list(request.collection)
        return pb.ListSnapshotsResponse(snapshots=[encode_snapshot_info(i) for i in infos])

    def DeleteSnapshot(
        self, request: pb.DeleteSnapshotRequest, context: grpc.ServicerContext
    ) -> pb.DeleteSnapshotResponse:
        return pb.DeleteSnapshotResponse(deleted=self._snapshots.delete(request.name))

    def DownloadSnapshot(
        self, request: pb.DownloadSnapshotRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SnapshotChunk]:
        for info, block in self._snapshots.chunks(request.name):
            if info is not None:
                yield pb.SnapshotChunk(snapshot=encode_snapshot_info(info), data=block)
            else:
                yield pb.SnapshotChunk(data=block)

    def RestoreSnapshot(
        self, request_iterator: Iterator[pb.RestoreSnapshotRequest], context: grpc.ServicerContext
    ) -> pb.RestoreSnapshotResponse:
        # A stalled uploader would pin this worker thread: wait for each chunk a bounded time.
        idle = getattr(self.engine, "limits", DEFAULT_LIMITS).stream_idle_timeout_s
        if not idle:
            return self._restore(request_iterator)
        stream = IdleTimeoutStream(request_iterator, idle, "snapshot upload")
        try:
            return self._restore(stream)
        finally:
            stream.close()

    def _restore(
        self, request_iterator: Iterator[pb.RestoreSnapshotRequest]
    ) -> pb.RestoreSnapshotResponse:
        first = next(request_iterator, None)
        if first is None or not first.collection:
            raise InvalidArgument("restore: the first message must name the collection to create")
        if first.snapshot:
            if first.data or any(msg.data for msg in request_iterator):
                raise InvalidArgument("restore: send either a snapshot name or archive data")
            info, snap = self._snapshots.restore_snapshot(
                first.snapshot, first.collection, overwrite=first.overwrite
            )
            return pb.RestoreSnapshotResponse(
                info=codec.encode_info(info), snapshot=encode_snapshot_info(snap)
            )

        def data() -> Iterator[bytes]:
            yield first.data
            for msg in request_iterator:
                yield msg.data

        info = self._snapshots.restore_upload(
            data(), first.collection, overwrite=first.overwrite, expected_sha256=first.sha256
        )
        return pb.RestoreSnapshotResponse(info=codec.encode_info(info))
