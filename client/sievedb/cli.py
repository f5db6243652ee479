"""The `sievedb` command line: run a server, manage collections, query.

    sievedb serve --data-dir ./data --port 50051
    sievedb create papers --dim 384 --schema category:keyword --schema year:integer
    sievedb query papers --vector-file q.npy --row 3 --k 5 --filter 'year >= 2020' --explain

Expected errors print `error: <reason>: <message> (request id ...)` and exit 1, without a
traceback. Commands that other modules contribute (`demo`, `load`, `bench`) are registered in
`PLUGIN_COMMANDS` and imported only when invoked.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sievedb.cli_limits import add_serve_limit_args, limits_from_args
from sievedb.cli_security import (
    add_client_security_args,
    add_serve_security_args,
    client_security_kwargs,
)
from sievedb.client import Client
from sievedb.errors import SieveDBError
from sievedb.types import METRICS, CollectionInfo, Field, SearchResult

__all__ = ["PLUGIN_COMMANDS", "add_client_args", "client_from_args", "main", "print_table"]

DEFAULT_TARGET = "localhost:50051"

# ---------------------------------------------------------------------------------------------
# PLUGIN REGISTRATION POINT: (command, module, one-line help).
# The module is imported only when its command is invoked, and must expose
#     add_parser(subparsers) -> None   # subparsers.add_parser(<command>, ...) plus its options
#     run(args: argparse.Namespace) -> int | None   # exit status (None = 0)
# Use `add_client_args(parser)` / `client_from_args(args)` for --target/--timeout handling.
# ---------------------------------------------------------------------------------------------
PLUGIN_COMMANDS: list[tuple[str, str, str]] = [
    ("demo", "sievedb.demo", "load a seeded synthetic dataset and run example filtered queries"),
    ("load", "sievedb.load", "bulk-load vectors and attributes from files"),
    ("bench", "sievedb.bench", "run a benchmark workload"),
    ("model", "sievedb.model_cli", "register, check and promote embedding models of a collection"),
    ("verify", "sievedb.verify_cli", "check a data folder's indexes against LMDB (and --repair)"),
    ("snapshot", "sievedb.snapshot_cli", "create, list, download, restore and delete snapshots"),
]


class CliError(Exception):
    """A usage problem detected by the CLI itself (printed as `error: ...`, exit 1)."""


# --- shared helpers (also for plugins) -------------------------------------------------------


def add_client_args(parser: argparse.ArgumentParser) -> None:
    """Add --target and --timeout (defaults from $SIEVEDB_TARGET, then localhost:50051), and
    the TLS / API key options of `cli_security` (--api-key, --tls, --tls-ca, ...)."""
    parser.add_argument(
        "--target",
        default=os.environ.get("SIEVEDB_TARGET", DEFAULT_TARGET),
        help="server address host:port (default: $SIEVEDB_TARGET or %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="per-call deadline in seconds (default 30)"
    )
    add_client_security_args(parser)


def client_from_args(args: argparse.Namespace) -> Client:
    return Client(args.target, timeout=args.timeout, **client_security_kwargs(args))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Left-aligned plain-text table on stdout."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line.rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _compact(attributes: dict[str, Any] | None) -> str:
    if not attributes:
        return ""
    return json.dumps(attributes, default=_json_default, ensure_ascii=False, sort_keys=True)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _parse_field(text: str) -> Field:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise argparse.ArgumentTypeError(f"expected NAME:TYPE[:noindex], got {text!r}")
    indexed = True
    if len(parts) == 3:
        if parts[2] != "noindex":
            raise argparse.ArgumentTypeError(f"third part must be 'noindex', got {parts[2]!r}")
        indexed = False
    return Field(parts[0], parts[1], indexed)


# --- commands --------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from sievedb_server.logs import configure_logging
        from sievedb_server.transport.security import SECURITY_ERRORS, security_from_options
        from sievedb_server.transport.server import serve_forever
    except ImportError as exc:
        raise CliError(
            f"the server is not installed ({exc}); install it with: pip install 'sievedb[server]'"
        ) from None
    configure_logging(args.log_level, args.log_format, sys.stderr)
    try:
        security = security_from_options(
            api_keys_file=args.api_keys,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            insecure=args.insecure,
        )
        security.check_bind(f"{args.host}:{args.port}")  # refuse before creating the data dir
        try:
            limits = limits_from_args(args)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        Path(args.data_dir).mkdir(parents=True, exist_ok=True)
        serve_forever(
            f"{args.host}:{args.port}",
            args.data_dir,
            max_workers=args.workers,
            max_message_mb=args.max_message_mb,
            grace=args.grace,
            blas_threads=args.blas_threads or None,
            security=security,
            engine_options={
                "store_max_bytes": max(args.max_store_mb, 0) << 20,
                "checkpoint_interval_s": args.checkpoint_interval,
            },
            limits=limits,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
        )
    except SECURITY_ERRORS as exc:
        raise CliError(str(exc)) from None
    return 0


def _info_rows(infos: Sequence[CollectionInfo]) -> list[list[Any]]:
    return [
        [i.name, i.dim, i.metric, i.point_count, i.indexed_count, _human_bytes(i.disk_bytes)]
        for i in infos
    ]


def cmd_collections(args: argparse.Namespace) -> int:
    with client_from_args(args) as db:
        infos = db.list_collections()
    if not infos:
        print("no collections")
        return 0
    print_table(["name", "dim", "metric", "points", "indexed", "disk"], _info_rows(infos))
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    with client_from_args(args) as db:
        info = db.create_collection(
            args.name,
            args.dim,
            args.metric,
            m=args.m,
            ef_construction=args.ef_construction,
            ef_search=args.ef_search,
            full_scan_threshold=args.full_scan_threshold,
            schema=args.schema or None,
        )
    print(f"created collection {info.name!r} (dim {info.dim}, {info.metric})")
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    with client_from_args(args) as db:
        dropped = db.drop_collection(args.name, missing_ok=args.missing_ok)
    print(f"dropped collection {args.name!r}" if dropped else f"no collection {args.name!r}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with client_from_args(args) as db:
        info = db.describe_collection(args.collection)
    hnsw = info.hnsw
    rows: list[list[Any]] = [
        ["name", info.name],
        ["dim", info.dim],
        ["metric", info.metric],
        ["points", info.point_count],
        ["indexed", info.indexed_count],
        ["watermark", info.watermark],
        ["index watermark", info.index_watermark],
        ["disk", _human_bytes(info.disk_bytes)],
        [
            "hnsw",
            (
                f"m={hnsw.m} ef_construction={hnsw.ef_construction} ef_search={hnsw.ef_search} "
                f"full_scan_threshold={hnsw.full_scan_threshold}"
            ),
        ],
    ]
    for f in info.schema:
        rows.append([f"field {f.name}", f.type + ("" if f.indexed else " (not indexed)")])
    print_table(["property", "value"], rows)
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    with client_from_args(args) as db:
        print(db.count(args.collection, args.filter))
    return 0


def _query_vector(args: argparse.Namespace) -> Any:
    import numpy as np

    if args.vector is not None:
        try:
            return np.array([float(x) for x in args.vector.split(",") if x.strip()], np.float32)
        except ValueError:
            raise CliError("--vector must be comma-separated numbers, e.g. 0.1,0.2,0.3") from None
    try:
        data = np.load(args.vector_file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {args.vector_file}: {exc}") from None
    if data.ndim == 1:
        return data
    if data.ndim != 2:
        raise CliError(f"{args.vector_file} holds an array of shape {data.shape}; need 1-D or 2-D")
    if not 0 <= args.row < data.shape[0]:
        raise CliError(f"--row {args.row} is outside 0..{data.shape[0] - 1}")
    return data[args.row]


def _print_result(result: SearchResult) -> None:
    if not result.hits:
        print("no hits")
    else:
        rows = [
            [rank, hit.id, f"{hit.score:.6f}", _compact(hit.attributes)]
            for rank, hit in enumerate(result.hits, 1)
        ]
        print_table(["rank", "id", "score", "attributes"], rows)
    if result.plan is not None:
        print(f"\nplan: {result.plan.describe()}")


def cmd_query(args: argparse.Namespace) -> int:
    vector = _query_vector(args)
    with client_from_args(args) as db:
        result = db.search(
            args.collection,
            vector,
            args.k,
            filter=args.filter,
            ef=args.ef,
            exact=args.exact,
            explain=args.explain,
            model=args.model,
        )
    _print_result(result)
    return 0


# --- parser ----------------------------------------------------------------------------------


def _add_builtin_commands(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run a sievedb server (needs the server extra)",
        description="Run a sievedb gRPC server until SIGTERM/SIGINT, then shut down gracefully.",
    )
    p.add_argument("--data-dir", required=True, help="directory holding the LMDB store and indexes")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=50051, help="port to bind, 0 = any free port")
    p.add_argument("--workers", type=int, default=16, help="RPC worker threads")
    p.add_argument(
        "--blas-threads", type=int, default=1,
        help="numpy BLAS threads per process (default 1: requests already run in parallel; "
        "0 = leave the library default)",
    )
    p.add_argument("--max-message-mb", type=int, default=64, help="largest request/response")
    p.add_argument("--grace", type=float, default=10.0, help="seconds in-flight calls may finish")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--max-store-mb", type=int, default=0,
        help="cap each collection's LMDB store at this many MiB; writes beyond it fail with "
        "RESOURCE_EXHAUSTED (default 0: no cap, the disk is the limit)",
    )
    p.add_argument(
        "--checkpoint-interval", type=float, default=30.0,
        help="seconds between index checkpoints (bounds replay after a crash; default 30)",
    )
    p.add_argument(
        "--log-format", default="text", choices=["text", "json"],
        help="text lines, or one JSON object per line (access log: request_id, method, status, "
        "duration_ms, peer, collection)",
    )
    p.add_argument(
        "--metrics-port", type=int, default=None, metavar="PORT",
        help="serve Prometheus metrics on http://METRICS_HOST:PORT/metrics (default: off)",
    )
    p.add_argument(
        "--metrics-host", default="127.0.0.1",
        help="interface of the metrics endpoint (default %(default)s; another needs --insecure: "
        "the endpoint has no TLS or authentication)",
    )
    add_serve_security_args(p)
    add_serve_limit_args(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "collections", help="list collections", description="List collections as a table."
    )
    add_client_args(p)
    p.set_defaults(func=cmd_collections)

    p = sub.add_parser("create", help="create a collection", description="Create a collection.")
    p.add_argument("name", help="collection name ([A-Za-z0-9_-]{1,64})")
    p.add_argument("--dim", type=int, required=True, help="vector dimension")
    p.add_argument("--metric", default="cosine", choices=METRICS, help="default %(default)s")
    p.add_argument("--m", type=int, help="HNSW graph degree (server default 16)")
    p.add_argument("--ef-construction", type=int, help="HNSW build beam (server default 200)")
    p.add_argument("--ef-search", type=int, help="HNSW search beam (server default 128)")
    p.add_argument("--full-scan-threshold", type=int, help="search exactly below this many points")
    p.add_argument(
        "--schema",
        action="append",
        type=_parse_field,
        metavar="NAME:TYPE[:noindex]",
        help="declare a field (repeatable); TYPE: keyword, keyword_list, integer, float, "
        "boolean, datetime",
    )
    add_client_args(p)
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("drop", help="drop a collection", description="Drop a collection.")
    p.add_argument("name")
    p.add_argument("--missing-ok", action="store_true", help="succeed if it does not exist")
    add_client_args(p)
    p.set_defaults(func=cmd_drop)

    p = sub.add_parser(
        "info", help="describe a collection", description="Show a collection's spec and counts."
    )
    p.add_argument("collection")
    add_client_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "count", help="count points", description="Count the points (matching a filter)."
    )
    p.add_argument("collection")
    p.add_argument("--filter", help="filter expression, e.g. 'year >= 2020 and lang == \"en\"'")
    add_client_args(p)
    p.set_defaults(func=cmd_count)

    p = sub.add_parser(
        "query",
        help="nearest-neighbour search",
        description="Search a collection and print the hits as a table.",
    )
    p.add_argument("collection")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--vector", help="the query as comma-separated floats")
    src.add_argument("--vector-file", help="a .npy file holding one vector or a matrix")
    p.add_argument("--row", type=int, default=0, help="row of --vector-file to use (default 0)")
    p.add_argument("--k", type=int, default=10, help="number of hits (default %(default)s)")
    p.add_argument("--filter", help="filter expression")
    p.add_argument("--ef", type=int, help="HNSW search beam for this query")
    p.add_argument("--exact", action="store_true", help="brute force (the exact answer)")
    p.add_argument("--explain", action="store_true", help="print the query plan")
    p.add_argument(
        "--model", default="", help="the model that embedded the query (default: the active one)"
    )
    add_client_args(p)
    p.set_defaults(func=cmd_query)


def _invoked_command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _add_plugins(sub: Any, invoked: str | None) -> dict[str, Callable[[argparse.Namespace], Any]]:
    """Register plugin commands; only the invoked one is imported."""
    runners: dict[str, Callable[[argparse.Namespace], Any]] = {}
    for name, module_name, help_text in PLUGIN_COMMANDS:
        module = None
        problem = ""
        if name == invoked:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                problem = f"the '{name}' command is not available: module {module_name} is missing"
        if module is not None:
            module.add_parser(sub)
            runners[name] = module.run
            continue
        p = sub.add_parser(name, help=help_text, description=help_text, add_help=name != invoked)
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        message = problem

        def unavailable(args: argparse.Namespace, message: str = message) -> int:
            raise CliError(message)

        runners[name] = unavailable
    return runners


def build_parser(argv: Sequence[str] = ()) -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    parser = argparse.ArgumentParser(
        prog="sievedb",
        description="sievedb: filtered nearest-neighbour search over gRPC.",
        epilog="Run 'sievedb COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_builtin_commands(sub)
    runners = _add_plugins(sub, _invoked_command(argv))
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, runners = build_parser(argv)
    args = parser.parse_args(argv)
    run = runners.get(args.command) or args.func
    try:
        status = run(args)
    except SieveDBError as exc:
        suffix = f" (request id {exc.request_id})" if exc.request_id else ""
        print(f"error: {exc.reason}: {exc.message}{suffix}", file=sys.stderr)
        return 1
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
