"""`sievedb verify`: check a data folder's derived structures against LMDB, optionally repair.

Runs against the files directly (stop the server first): for every collection it compares the
live set, the posting lists, the numeric range indexes and the HNSW graph with a
recomputation from what LMDB stores, and with `--repair` rebuilds what disagrees from LMDB.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check (and --repair) a data folder's indexes against LMDB; stop the server first",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-dir", required=True, help="the server's data folder")
    p.add_argument("--collection", action="append", help="only these collections (repeatable)")
    p.add_argument("--repair", action="store_true", help="rebuild what disagrees from LMDB")


def run(args: argparse.Namespace) -> int:
    from sievedb_server.core.engine import Engine
    from sievedb_server.core.verify import find_problems, repair_collection

    engine = Engine(args.data_dir, checkpoint_interval_s=3600)
    bad = 0
    try:
        names = args.collection or [info.spec.name for info in engine.list_collections()]
        for name in names:
            coll = engine.collection(name)
            coll.wait_indexed()
            problems = find_problems(coll)
            if not problems:
                print(f"{name}: ok ({coll.live_count} points)")
                continue
            for problem in problems:
                print(f"{name}: {problem.kind}: {problem.message}")
            if args.repair:
                for action in repair_collection(coll):
                    print(f"{name}: repaired: {action}")
                problems = find_problems(coll)
                print(f"{name}: {'ok after repair' if not problems else 'STILL INCONSISTENT'}")
            bad += bool(problems)
    finally:
        engine.close()
    return 1 if bad else 0
