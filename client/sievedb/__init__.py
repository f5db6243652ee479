"""sievedb: the Python client for the sievedb vector store.

    from sievedb import Client, F

    with Client("localhost:50051") as db:
        hits = db.search("papers", query, k=10, filter=F.field("year") >= 2020)

Imports only grpc, protobuf and numpy (never the server's hnswlib / lmdb).
"""

from __future__ import annotations

from sievedb import errors, types
from sievedb.client import Client
from sievedb.errors import SieveDBError
from sievedb.filters import F
from sievedb.types import (
    CollectionInfo,
    DeleteResult,
    Field,
    Hit,
    Plan,
    Point,
    ScrollPage,
    SearchResult,
    UpsertResult,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "CollectionInfo",
    "DeleteResult",
    "F",
    "Field",
    "Hit",
    "Plan",
    "Point",
    "ScrollPage",
    "SearchResult",
    "SieveDBError",
    "UpsertResult",
    "errors",
    "types",
]
