"""`sievedb snapshot`: consistent online snapshots of a collection, and their restore.

    sievedb snapshot create papers                    # taken while papers keeps serving
    sievedb snapshot list [papers]
    sievedb snapshot download NAME [PATH]             # sha256-checked; PATH defaults to .
    sievedb snapshot restore FILE papers_copy         # upload into a NEW collection
    sievedb snapshot restore --server NAME papers_copy  # from the server's own copy
    sievedb snapshot delete NAME

Snapshots live on the server under <data-dir>/snapshots/<collection>/. Restore refuses an
existing collection name unless --overwrite.
"""

from __future__ import annotations

import argparse
from typing import Any

from sievedb.cli import _human_bytes as _size
from sievedb.cli import add_client_args, client_from_args, print_table

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "snapshot",
        help="create, list, download, restore and delete snapshots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    q = sub.add_parser("create", help="snapshot a collection on the server (online)")
    q.add_argument("collection", help="collection or alias")
    add_client_args(q)

    q = sub.add_parser("list", help="list the snapshots stored on the server")
    q.add_argument("collection", nargs="?", default="", help="only this collection's")
    add_client_args(q)

    q = sub.add_parser("download", help="download a snapshot archive (sha256-checked)")
    q.add_argument("name")
    q.add_argument("path", nargs="?", default=".", help="file or directory (default: .)")
    add_client_args(q)

    q = sub.add_parser("restore", help="restore a snapshot into a new collection")
    q.add_argument("source", help="a snapshot archive file (or, with --server, a snapshot name)")
    q.add_argument("collection", help="the collection to create")
    q.add_argument(
        "--server", action="store_true", help="SOURCE names a snapshot stored on the server"
    )
    q.add_argument("--overwrite", action="store_true", help="replace an existing collection")
    add_client_args(q)

    q = sub.add_parser("delete", help="delete a snapshot stored on the server")
    q.add_argument("name")
    add_client_args(q)


def run(args: argparse.Namespace) -> int:
    with client_from_args(args) as db:
        if args.action == "create":
            snap = db.create_snapshot(args.collection, timeout=None)
            print(
                f"created snapshot {snap.name} ({_size(snap.size_bytes)}, {snap.point_count} "
                f"points, watermark {snap.watermark})\nsha256 {snap.sha256}"
            )
        elif args.action == "list":
            snaps = db.list_snapshots(args.collection)
            if not snaps:
                print("no snapshots")
                return 0
            print_table(
                ["name", "collection", "created", "points", "size", "sha256"],
                [
                    [
                        s.name,
                        s.collection,
                        s.created_at,
                        s.point_count,
                        _size(s.size_bytes),
                        s.sha256[:16],
                    ]
                    for s in snaps
                ],
            )
        elif args.action == "download":
            path = db.download_snapshot(args.name, args.path)
            print(f"downloaded {args.name} to {path} (sha256 checked)")
        elif args.action == "restore":
            if args.server:
                info = db.restore_server_snapshot(
                    args.source, args.collection, overwrite=args.overwrite
                )
            else:
                info = db.restore_snapshot(args.source, args.collection, overwrite=args.overwrite)
            print(
                f"restored collection {info.name!r}: {info.point_count} points, "
                f"{info.indexed_count} indexed, watermark {info.watermark}"
            )
        elif args.action == "delete":
            db.delete_snapshot(args.name)
            print(f"deleted snapshot {args.name}")
    return 0
