"""Snapshot messages ⇄ domain values (the snapshot RPCs' part of the codec)."""

from __future__ import annotations

from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb_server.core.snapshots import SnapshotInfo

__all__ = ["encode_snapshot_info"]


def encode_snapshot_info(info: SnapshotInfo) -> pb.SnapshotInfo:
    return pb.SnapshotInfo(
        name=info.name,
        collection=info.collection,
        size_bytes=info.size_bytes,
        sha256=info.sha256,
        created_at=info.created_at,
        watermark=info.watermark,
        point_count=info.point_count,
    )
