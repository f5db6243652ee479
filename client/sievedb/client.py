"""`Client`: the numpy-native, blocking Python client for a sievedb server.

    with Client("localhost:50051") as db:
        db.create_collection("papers", dim=384, schema={"category": "keyword", "year": "integer"})
        db.upsert("papers", ids, vectors, attributes)
        result = db.search("papers", query, k=10, filter='category == "cs.LG" and year >= 2020')
        result.ids, result.scores

Every method takes `timeout=` (seconds; None = no deadline) overriding the client default.
A secured server: `Client(target, api_key=..., tls=True | "ca.pem", client_cert=, client_key=)`
(see `sievedb._security`).
Failed calls raise `sievedb.errors.SieveDBError` subclasses; argument problems caught locally
raise `InvalidArgument` before any RPC. The channel is closed by `close()` / the `with` block.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import Enum
from typing import Any, Final, Self

import grpc
import numpy as np
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_proto.v1 import sievedb_pb2_grpc as pb_grpc

from sievedb import _bulk, _security, _wire
from sievedb.errors import from_rpc_error
from sievedb.models import ModelsMixin
from sievedb.snapshots import SnapshotsMixin
from sievedb.types import (
    BulkLoadResult,
    CollectionInfo,
    DeleteResult,
    LoadStatus,
    Operation,
    Point,
    ScrollPage,
    SearchResult,
    UpsertResult,
)

__all__ = ["Client"]


class _Default(Enum):
    TIMEOUT = "client default timeout"


DEFAULT: Final = _Default.TIMEOUT
Timeout = float | None | _Default

# The server enforces its own request limit; responses (hits with vectors) may exceed
# grpc's 4 MiB client default, so the client accepts what the server sends.
_CHANNEL_OPTIONS: Final = (
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
)


class Client(ModelsMixin, SnapshotsMixin):
    """A connection to one sievedb server (thread-safe; share one per process)."""

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        timeout: float | None = 30.0,
        metadata: Sequence[tuple[str, str]] | None = None,
        api_key: str | None = None,
        tls: bool | _security.PathLike = False,
        client_cert: _security.PathLike | None = None,
        client_key: _security.PathLike | None = None,
    ) -> None:
        """`api_key` is sent as `authorization: Bearer <key>`; `tls` is False (plaintext),
        True (system roots) or the path of a PEM CA; `client_cert`/`client_key` (PEM paths)
        present a client certificate and imply TLS."""
        self.target = target
        self.timeout = timeout
        self.metadata: tuple[tuple[str, str], ...] = tuple(metadata or ()) + (
            _security.auth_metadata(api_key)
        )
        credentials = _security.channel_credentials(tls, client_cert, client_key)
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=list(_CHANNEL_OPTIONS))
        else:
            self._channel = grpc.secure_channel(target, credentials, options=list(_CHANNEL_OPTIONS))
        self._stub = pb_grpc.SieveDBStub(self._channel)

    # --- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    def _call(self, method: str, request: Any, timeout: Timeout) -> Any:
        stub_method = getattr(self._stub, method)
        deadline = self.timeout if timeout is DEFAULT else timeout
        try:
            return stub_method(request, timeout=deadline, metadata=self.metadata or None)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    # --- collections ---------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        *,
        m: int | None = None,
        ef_construction: int | None = None,
        ef_search: int | None = None,
        full_scan_threshold: int | None = None,
        schema: Mapping[str, str] | Iterable[Any] | None = None,
        timeout: Timeout = DEFAULT,
    ) -> CollectionInfo:
        """Create a collection; `schema` is `{name: type}` or a list of `Field` / tuples.

        HNSW parameters left as None take the server defaults (see docs/PARAMETERS.md).
        """
        spec = pb.CollectionSpec(
            name=name,
            dim=int(dim),
            metric=_wire.encode_metric(metric),
            hnsw=pb.HnswConfig(
                m=m or 0,
                ef_construction=ef_construction or 0,
                ef_search=ef_search or 0,
                full_scan_threshold=full_scan_threshold,
            ),
            schema=_wire.encode_schema(schema),
        )
        reply = self._call("CreateCollection", pb.CreateCollectionRequest(spec=spec), timeout)
        return _wire.decode_info(reply.info)

    def describe_collection(self, name: str, *, timeout: Timeout = DEFAULT) -> CollectionInfo:
        reply = self._call("DescribeCollection", pb.DescribeCollectionRequest(name=name), timeout)
        return _wire.decode_info(reply.info)

    def list_collections(self, *, timeout: Timeout = DEFAULT) -> list[CollectionInfo]:
        reply = self._call("ListCollections", pb.ListCollectionsRequest(), timeout)
        return [_wire.decode_info(info) for info in reply.collections]

    def drop_collection(
        self, name: str, missing_ok: bool = False, *, timeout: Timeout = DEFAULT
    ) -> bool:
        """True when dropped; False when absent and `missing_ok` (else CollectionNotFound)."""
        request = pb.DropCollectionRequest(name=name, missing_ok=missing_ok)
        return bool(self._call("DropCollection", request, timeout).dropped)

    def update_schema(
        self,
        collection: str,
        fields: Mapping[str, str] | Iterable[Any],
        *,
        timeout: Timeout = DEFAULT,
    ) -> CollectionInfo:
        """Add fields, or start indexing existing ones."""
        request = pb.UpdateSchemaRequest(collection=collection, fields=_wire.encode_schema(fields))
        return _wire.decode_info(self._call("UpdateSchema", request, timeout).info)

    # --- points --------------------------------------------------------------------------

    def upsert(
        self,
        collection: str,
        ids: Sequence[Any] | np.ndarray,
        vectors: Any,
        attributes: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        batch_size: int = 1000,
        model: str = "",
        timeout: Timeout = DEFAULT,
    ) -> UpsertResult:
        """Insert or replace points, `batch_size` per request (each batch is atomic)."""
        id_msgs = _wire.id_list(ids)
        matrix = _wire.vector_matrix(vectors)
        n = len(id_msgs)
        if matrix.shape[0] != n:
            raise _wire.local_error(f"{n} ids but {matrix.shape[0]} vectors")
        if attributes is not None and len(attributes) != n:
            raise _wire.local_error(f"{n} ids but {len(attributes)} attribute maps")
        if batch_size <= 0:
            raise _wire.local_error(f"batch_size must be positive, got {batch_size}")
        upserted, watermark = 0, 0
        for start in range(0, max(n, 1), batch_size):
            stop = min(start + batch_size, n)
            request = pb.UpsertRequest(
                collection=collection,
                ids=id_msgs[start:stop],
                vectors=_wire.encode_vectors(matrix[start:stop]),
                model=model,
            )
            if attributes is not None:
                request.attributes.extend(
                    _wire.encode_attributes(a) for a in attributes[start:stop]
                )
            reply = self._call("Upsert", request, timeout)
            upserted += reply.upserted
            watermark = reply.watermark
        return UpsertResult(upserted=upserted, watermark=watermark)

    def bulk_load(
        self,
        collection: str,
        vectors: Any,
        ids: Sequence[Any] | np.ndarray | None = None,
        attributes: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        batch_size: int | None = None,
        load_id: str = "",
        start: int = 0,
        progress: Callable[[int], Any] | None = None,
        model: str = "",
        timeout: float | None = None,
    ) -> BulkLoadResult:
        """Stream points to the server in durable chunks; the graph is built in the background.

        `vectors` is an (n, dim) array (with optional `ids`, default row numbers, and
        `attributes`), or an iterable of batches: arrays, `(vectors, ids[, attributes])`
        tuples or `sievedb.readers.Chunk`s. Each chunk is one server transaction, durable once
        the next is accepted. With `load_id`, the server records the committed source rows
        (`load_status`), so an interrupted load resumes with `start=rows_committed`; re-sent
        ids are upserted, never duplicated. `progress(n)` is called as each chunk of n points
        is acknowledged (durable); at most a few chunks are in flight, so memory stays bounded.
        Searches see the points at once (exactly); `wait_indexed` waits for the graph.
        """
        if _is_matrix(vectors):
            matrix = _wire.vector_matrix(vectors)
            size = batch_size or _bulk.default_batch_size(matrix.shape[1])
            if size <= 0:
                raise _wire.local_error(f"batch_size must be positive, got {batch_size}")
            batches = _bulk.array_batches(matrix, ids, attributes, size, start)
        else:
            if ids is not None or attributes is not None:
                raise _wire.local_error("with an iterable of batches, put ids/attributes in them")
            batches = _bulk.iterable_batches(vectors, start)
        stream = _bulk.ChunkStream(collection, batches, load_id, progress)
        reply = pb.BulkLoadResponse()
        try:
            for reply in self._stub.BulkLoad(
                _with_model(iter(stream), model), timeout=timeout, metadata=self.metadata or None
            ):
                stream.acknowledged(reply.count)
        except grpc.RpcError as exc:
            if stream.error is not None:
                raise stream.error from None
            raise from_rpc_error(exc) from exc
        finally:
            stream.finish()
        if stream.error is not None:
            raise stream.error
        return BulkLoadResult(
            upserted=reply.upserted,
            chunks=reply.chunks,
            watermark=reply.watermark,
            rows_committed=reply.rows_committed,
        )

    def load_status(
        self, collection: str, load_id: str, *, timeout: Timeout = DEFAULT
    ) -> LoadStatus:
        """How many source rows of `load_id` are durable (resume from there), plus counts."""
        reply = self._call(
            "LoadStatus", pb.LoadStatusRequest(collection=collection, load_id=load_id), timeout
        )
        return LoadStatus(reply.known, reply.rows_committed, _wire.decode_info(reply.info))

    def wait_indexed(
        self,
        collection: str,
        *,
        poll: float = 0.5,
        deadline: float | None = None,
        progress: Callable[[CollectionInfo], Any] | None = None,
    ) -> CollectionInfo:
        """Poll `describe_collection` until every stored point is in the graph.

        `deadline` is seconds from now (None = wait as long as it takes; raises TimeoutError).
        """
        limit = None if deadline is None else time.monotonic() + deadline
        while True:
            info = self.describe_collection(collection)
            if progress is not None:
                progress(info)
            if info.indexed_count >= info.point_count:
                return info
            if limit is not None and time.monotonic() >= limit:
                raise TimeoutError(
                    f"{collection}: {info.indexed_count} of {info.point_count} points indexed"
                )
            time.sleep(poll)

    def start_import(
        self,
        collection: str,
        path: str,
        *,
        format: str = "",
        vector_column: str = "",
        id_column: str = "",
        attribute_columns: Sequence[str] = (),
        attributes_path: str = "",
        ids_path: str = "",
        id_type: str = "",
        dataset: str = "",
        limit: int = 0,
        load_id: str = "",
        batch_size: int = 0,
        timeout: Timeout = DEFAULT,
    ) -> Operation:
        """Have the server read `path` (a path on the server) as a long-running operation.

        Starting the same import again resumes it after its last durable chunk.
        """
        source = pb.ImportSource(
            path=path, format=format, vector_column=vector_column, id_column=id_column,
            attribute_columns=list(attribute_columns), attributes_path=attributes_path,
            ids_path=ids_path, dataset=dataset, limit=limit, id_type=id_type,
        )
        request = pb.StartImportRequest(
            collection=collection, source=source, load_id=load_id, batch_size=batch_size
        )
        return _operation(self._call("StartImport", request, timeout))

    def get_operation(self, op_id: str, *, timeout: Timeout = DEFAULT) -> Operation:
        return _operation(self._call("GetOperation", pb.GetOperationRequest(id=op_id), timeout))

    def get(
        self,
        collection: str,
        ids: Sequence[Any] | np.ndarray,
        *,
        with_vectors: bool = False,
        with_attributes: bool = True,
        allow_missing: bool = False,
        timeout: Timeout = DEFAULT,
    ) -> list[Point]:
        """Points by id, in request order (unknown ids: PointNotFound unless `allow_missing`)."""
        request = pb.GetPointsRequest(
            collection=collection,
            ids=_wire.id_list(ids),
            with_vectors=with_vectors,
            with_attributes=with_attributes,
            allow_missing=allow_missing,
        )
        reply = self._call("GetPoints", request, timeout)
        return [
            _wire.decode_point(p, with_vectors=with_vectors, with_attributes=with_attributes)
            for p in reply.points
        ]

    def delete(
        self,
        collection: str,
        ids: Sequence[Any] | np.ndarray | None = None,
        *,
        filter: Any = None,
        timeout: Timeout = DEFAULT,
    ) -> DeleteResult:
        """Delete the given ids and every point matching `filter`."""
        request = pb.DeletePointsRequest(
            collection=collection, ids=_wire.id_list(ids) if ids is not None else []
        )
        flt = _wire.encode_filter(filter)
        if flt is not None:
            request.filter.CopyFrom(flt)
        reply = self._call("DeletePoints", request, timeout)
        return DeleteResult(deleted=reply.deleted, watermark=reply.watermark)

    def count(
        self,
        collection: str,
        filter: Any = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> int:
        request = pb.CountRequest(collection=collection)
        flt = _wire.encode_filter(filter)
        if flt is not None:
            request.filter.CopyFrom(flt)
        return int(self._call("Count", request, timeout).count)

    def scroll(
        self,
        collection: str,
        filter: Any = None,
        limit: int = 100,
        cursor: bytes = b"",
        *,
        with_vectors: bool = False,
        with_attributes: bool = True,
        timeout: Timeout = DEFAULT,
    ) -> ScrollPage:
        """One page of points in id order; pass `page.next_cursor` back for the next one."""
        request = pb.ScrollRequest(
            collection=collection,
            limit=limit,
            cursor=cursor,
            with_vectors=with_vectors,
            with_attributes=with_attributes,
        )
        flt = _wire.encode_filter(filter)
        if flt is not None:
            request.filter.CopyFrom(flt)
        reply = self._call("Scroll", request, timeout)
        points = tuple(
            _wire.decode_point(p, with_vectors=with_vectors, with_attributes=with_attributes)
            for p in reply.points
        )
        return ScrollPage(points=points, next_cursor=reply.next_cursor)

    def iter_points(
        self,
        collection: str,
        filter: Any = None,
        *,
        page_size: int = 100,
        with_vectors: bool = False,
        with_attributes: bool = True,
        timeout: Timeout = DEFAULT,
    ) -> Iterator[Point]:
        """Every (matching) point, fetched page by page with `scroll`."""
        cursor = b""
        while True:
            page = self.scroll(
                collection,
                filter,
                page_size,
                cursor,
                with_vectors=with_vectors,
                with_attributes=with_attributes,
                timeout=timeout,
            )
            yield from page.points
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # --- search --------------------------------------------------------------------------

    def search(
        self,
        collection: str,
        vector: Any,
        k: int = 10,
        *,
        filter: Any = None,
        ef: int | None = None,
        exact: bool = False,
        with_attributes: bool = True,
        with_vectors: bool = False,
        explain: bool = False,
        model: str = "",
        timeout: Timeout = DEFAULT,
    ) -> SearchResult:
        """The `k` nearest points to `vector` among those matching `filter`, best first."""
        request = pb.SearchRequest(
            collection=collection,
            query=_wire.encode_vectors(_wire.query_vector(vector).reshape(1, -1)),
            params=_params(k, ef, exact, with_attributes, with_vectors, explain),
            model=model,
        )
        flt = _wire.encode_filter(filter)
        if flt is not None:
            request.filter.CopyFrom(flt)
        reply = self._call("Search", request, timeout)
        return _wire.decode_result(
            reply.result, with_vectors=with_vectors, with_attributes=with_attributes
        )

    def search_batch(
        self,
        collection: str,
        matrix: Any,
        k: int = 10,
        *,
        filters: Any = None,
        ef: int | None = None,
        exact: bool = False,
        with_attributes: bool = True,
        with_vectors: bool = False,
        explain: bool = False,
        model: str = "",
        timeout: Timeout = DEFAULT,
    ) -> list[SearchResult]:
        """One result per row of `matrix`; `filters` is None, one shared filter, or one per row."""
        queries = _wire.vector_matrix(matrix)
        request = pb.SearchBatchRequest(
            collection=collection,
            queries=_wire.encode_vectors(queries),
            params=_params(k, ef, exact, with_attributes, with_vectors, explain),
            model=model,
        )
        request.filters.extend(_batch_filters(filters, queries.shape[0]))
        reply = self._call("SearchBatch", request, timeout)
        return [
            _wire.decode_result(r, with_vectors=with_vectors, with_attributes=with_attributes)
            for r in reply.results
        ]


def _with_model(
    requests: Iterator[pb.BulkLoadRequest], model: str
) -> Iterator[pb.BulkLoadRequest]:
    """Stamp each bulk-load chunk with the model that embedded it ("" = the active model)."""
    for request in requests:
        if model:
            request.model = model
        yield request


def _is_matrix(value: Any) -> bool:
    """An (n, dim) array or list of vectors, as opposed to an iterable of batches."""
    if isinstance(value, np.ndarray):
        return True
    if isinstance(value, list) and value and not isinstance(value[0], tuple):
        return not hasattr(value[0], "offset") and np.ndim(value[0]) == 1
    return False


def _operation(msg: pb.Operation) -> Operation:
    return Operation(
        id=msg.id,
        collection=msg.collection,
        state=msg.state,
        rows_done=msg.rows_done,
        rows_total=msg.rows_total,
        error=msg.error,
        load_id=msg.load_id,
        info=_wire.decode_info(msg.info) if msg.HasField("info") else None,
    )


def _params(
    k: int, ef: int | None, exact: bool, with_attributes: bool, with_vectors: bool, explain: bool
) -> pb.SearchParams:
    # Only what the wire cannot carry is checked here; k == 0 goes to the server, whose
    # validation (and message) is the single authority.
    if not 0 <= k < 2**32:
        raise _wire.local_error(f"k must be positive, got {k}")
    if ef is not None and not 0 <= ef < 2**32:
        raise _wire.local_error(f"ef must be positive, got {ef}")
    return pb.SearchParams(
        k=k,
        ef=ef or 0,
        exact=exact,
        with_attributes=with_attributes,
        with_vectors=with_vectors,
        explain=explain,
    )


def _batch_filters(filters: Any, n: int) -> list[pb.Filter]:
    if filters is None:
        return []
    if isinstance(filters, str | pb.Filter) or hasattr(filters, "to_proto"):
        single = _wire.encode_filter(filters)
        return [single] if single is not None else []
    per_query = list(filters)
    if len(per_query) != n:
        raise _wire.local_error(f"{len(per_query)} filters for {n} queries")
    return [_wire.encode_filter(f) or pb.Filter() for f in per_query]
