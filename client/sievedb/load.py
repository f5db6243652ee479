"""`sievedb load`: stream a file of vectors (+ ids + attributes) into a collection.

    sievedb load papers vectors.npy --attributes meta.jsonl --create --metric cosine
    sievedb load papers base.fbin --ids-file ids.txt --resume
    sievedb load papers data.parquet --vector-column emb --id-column id --attribute-column year
    sievedb load sift sift-128-euclidean.hdf5 --dataset train --create --metric l2
    sievedb load big /data/on/the/server/base.u8bin --server-side

The file is read in chunks (never whole; see `sievedb.readers`), each chunk one durable server
transaction; a progress bar shows rows/s and ETA, then the background index build. Every load
has a load id (`--load-id`, or derived from the file's path, size and mtime plus the options
that change what is read), and the server records how many rows of it are durable; `--resume`
asks and continues from there. Re-running without `--resume` re-sends everything, which is
harmless: ids are upserted, never duplicated. Bad input stops the load with an error naming the
file and row; chunks before it stay committed, nothing of the bad chunk is applied.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

from sievedb.cli import CliError, _parse_field, add_client_args, client_from_args
from sievedb.errors import CollectionNotFound
from sievedb.readers import FORMATS, Source, SourceError, open_source
from sievedb.types import METRICS, CollectionInfo

__all__ = ["add_parser", "derive_load_id", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "load",
        help="bulk-load vectors and attributes from files",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="formats: " + ", ".join(FORMATS),
    )
    p.add_argument("collection")
    p.add_argument("path", help="vector file (.npy .fvecs .bvecs .ivecs .fbin .u8bin .i8bin "
                   ".parquet .arrow .hdf5)")
    p.add_argument("--format", choices=FORMATS, help="override the extension")
    ids = p.add_mutually_exclusive_group()
    ids.add_argument("--ids-file", help="text file, one id per line (default: row numbers)")
    ids.add_argument("--id-column", help="Parquet/Arrow column holding the ids")
    p.add_argument("--id-type", choices=("auto", "int", "str"), default="auto",
                   help="ids in --ids-file: auto = integers when the first is digits")
    p.add_argument("--attributes", help="JSON-lines file, one object per row (empty line = none)")
    p.add_argument("--attribute-column", action="append", default=[], metavar="COLUMN",
                   help="Parquet/Arrow column to store as an attribute (repeatable)")
    p.add_argument("--vector-column", default="vector", help="Parquet/Arrow vector column")
    p.add_argument("--dataset", default="train", help="HDF5 dataset (default %(default)s)")
    p.add_argument("--limit", type=int, help="load only the first N rows")
    p.add_argument("--batch-size", type=int, help="rows per chunk (default: ~4 MiB of vectors)")
    p.add_argument("--load-id", help="resumable-load key (default: derived from the file)")
    p.add_argument("--resume", action="store_true",
                   help="skip the rows the server already committed for this load")
    p.add_argument("--no-wait", action="store_true",
                   help="return once stored; do not wait for the background index build")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--server-side", action="store_true",
                   help="the server reads PATH itself (a path on the server), as an operation")
    p.add_argument("--create", action="store_true", help="create the collection if missing")
    p.add_argument("--metric", default="cosine", choices=METRICS, help="with --create")
    p.add_argument("--m", type=int, help="with --create: HNSW graph degree")
    p.add_argument("--ef-construction", type=int, help="with --create: HNSW build beam")
    p.add_argument("--schema", action="append", type=_parse_field, metavar="NAME:TYPE[:noindex]",
                   help="with --create: declare a field (repeatable)")
    add_client_args(p)


def derive_load_id(args: argparse.Namespace) -> str:
    """Same file version + same reading options + same collection → same load id."""
    parts = [args.collection]
    for name in ("path", "ids_file", "attributes"):
        value = getattr(args, name)
        if value:
            p = Path(value).resolve()
            st = p.stat() if p.exists() else None
            parts += [str(p), str(st.st_size if st else -1), str(st.st_mtime_ns if st else -1)]
    parts += [str(getattr(args, n)) for n in (
        "format", "id_column", "id_type", "attribute_column", "vector_column", "dataset")]
    return "cli-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


class _Progress:
    """tqdm when installed, else a plain line on stderr every second."""

    def __init__(self, total: int, desc: str, initial: int, enabled: bool) -> None:
        self.total, self.desc, self.done, self.enabled = total, desc, initial, enabled
        self.start_done = initial
        self._t0 = self._last = time.perf_counter()
        self._bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="vec",
                             unit_scale=True, file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last >= 1.0 or self.done >= self.total:
            self._last = now
            rate = (self.done - self.start_done) / max(now - self._t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"{self.desc}: {self.done}/{self.total} ({rate:,.0f}/s, ETA {eta:,.0f}s)",
                  file=sys.stderr)

    def set(self, value: int) -> None:
        self.update(value - self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _open(args: argparse.Namespace) -> Source:
    try:
        return open_source(
            args.path,
            format=args.format,
            vector_column=args.vector_column,
            id_column=args.id_column,
            attribute_columns=args.attribute_column,
            attributes_path=args.attributes,
            ids_path=args.ids_file,
            id_type="" if args.id_type == "auto" else args.id_type,
            dataset=args.dataset,
        )
    except SourceError as exc:
        raise CliError(str(exc)) from None


def _ensure_collection(db: Any, args: argparse.Namespace, dim: int) -> CollectionInfo:
    try:
        info: CollectionInfo = db.describe_collection(args.collection)
    except CollectionNotFound:
        if not args.create:
            raise CliError(
                f"collection {args.collection!r} does not exist; pass --create (with --metric)"
            ) from None
        info = db.create_collection(
            args.collection, dim, args.metric, m=args.m, ef_construction=args.ef_construction,
            schema=args.schema or None,
        )
        print(f"created collection {args.collection!r} (dim {dim}, {args.metric})",
              file=sys.stderr)
    if info.dim != dim:
        raise CliError(
            f"{args.path}: vectors have dim {dim}, collection {args.collection!r} has dim "
            f"{info.dim}"
        )
    return info


def _wait_index(db: Any, args: argparse.Namespace, show: bool) -> CollectionInfo:
    info = db.describe_collection(args.collection)
    bar = _Progress(info.point_count, "indexing", info.indexed_count, show)
    try:
        return db.wait_indexed(args.collection, poll=0.2,
                               progress=lambda i: bar.set(min(i.indexed_count, bar.total)))
    finally:
        bar.close()


def _run_server_side(db: Any, args: argparse.Namespace, show: bool) -> int:
    op = db.start_import(
        args.collection, args.path, format=args.format or "",
        vector_column=args.vector_column, id_column=args.id_column or "",
        attribute_columns=args.attribute_column, attributes_path=args.attributes or "",
        ids_path=args.ids_file or "", id_type="" if args.id_type == "auto" else args.id_type,
        dataset=args.dataset, limit=args.limit or 0, load_id=args.load_id or "",
        batch_size=args.batch_size or 0,
    )
    print(f"import {op.id} started (load id {op.load_id})", file=sys.stderr)
    bar = _Progress(op.rows_total, "importing", op.rows_done, show)
    try:
        while not op.done:
            time.sleep(0.5)
            op = db.get_operation(op.id)
            bar.set(op.rows_done)
    finally:
        bar.close()
    if op.state != "SUCCEEDED":
        raise CliError(f"import failed after {op.rows_done} rows: {op.error}")
    if not args.no_wait:
        _wait_index(db, args, show)
    print(f"imported {op.rows_done} rows into {args.collection!r}")
    return 0


def run(args: argparse.Namespace) -> int:
    show = not args.no_progress
    with client_from_args(args) as db:
        if args.server_side:
            return _run_server_side(db, args, show)
        with _open(args) as source:
            _ensure_collection(db, args, source.dim)
            load_id = args.load_id or derive_load_id(args)
            start = 0
            if args.resume:
                status = db.load_status(args.collection, load_id)
                start = status.rows_committed
                print(f"resuming load {load_id} at row {start}", file=sys.stderr)
            total = source.rows if args.limit is None else min(source.rows, args.limit)
            batch = args.batch_size or _default_batch(source.dim)
            bar = _Progress(total, "loading", start, show)
            t0 = time.perf_counter()
            try:
                result = db.bulk_load(
                    args.collection,
                    source.chunks(batch, start, args.limit),
                    load_id=load_id,
                    start=start,
                    progress=bar.update,
                    timeout=None,
                )
            except SourceError as exc:
                raise CliError(f"{exc} (rows before it are committed; re-run with --resume)") \
                    from None
            finally:
                bar.close()
            seconds = time.perf_counter() - t0
        info = db.describe_collection(args.collection) if args.no_wait else \
            _wait_index(db, args, show)
    rate = result.upserted / seconds if seconds > 0 else 0.0
    print(
        f"loaded {result.upserted} points into {args.collection!r} in {seconds:.1f}s "
        f"({rate:,.0f}/s); {info.point_count} stored, {info.indexed_count} indexed "
        f"(load id {load_id})"
    )
    return 0


def _default_batch(dim: int) -> int:
    from sievedb._bulk import default_batch_size

    return default_batch_size(dim)
