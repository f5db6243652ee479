"""The `sievedb.v1.SieveDB` servicer: decode, call the engine, encode. Nothing else.

Servicers never catch errors and never touch the context: domain errors raised by the codec
or the engine propagate to `interceptors.RequestInterceptor`, which owns status mapping,
request ids, deadlines and logging. Limits come from the engine's `limits` table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_proto.v1 import sievedb_pb2_grpc as pb_grpc

from sievedb_server.core import deadline
from sievedb_server.errors import CollectionNotFound, InvalidArgument, InvalidFilter
from sievedb_server.limits import DEFAULT_LIMITS, Limits
from sievedb_server.transport import codec
from sievedb_server.transport.filter_codec import decode_filter
from sievedb_server.transport.model_servicer import ModelServicerMixin
from sievedb_server.transport.snapshot_servicer import SnapshotServicerMixin
from sievedb_server.transport.streams import IdleTimeoutStream

if TYPE_CHECKING:
    import grpc

    from sievedb_server.core.engine import Engine

__all__ = ["SieveDBServicer"]


class SieveDBServicer(ModelServicerMixin, SnapshotServicerMixin, pb_grpc.SieveDBServicer):
    """Thin adapter from `sievedb.v1` messages to the in-process `Engine` API."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def limits(self) -> Limits:
        return getattr(self.engine, "limits", DEFAULT_LIMITS)

    def _filter_of(self, msg: Any, field: str = "filter") -> Any:
        """The domain filter of a request's optional `filter` field (None when unset)."""
        return decode_filter(getattr(msg, field), self.limits) if msg.HasField(field) else None

    # --- collections ---------------------------------------------------------------------

    def CreateCollection(
        self, request: pb.CreateCollectionRequest, context: grpc.ServicerContext
    ) -> pb.CreateCollectionResponse:
        info = self.engine.create_collection(codec.decode_spec(request.spec))
        return pb.CreateCollectionResponse(info=codec.encode_info(info))

    def DescribeCollection(
        self, request: pb.DescribeCollectionRequest, context: grpc.ServicerContext
    ) -> pb.DescribeCollectionResponse:
        info = self.engine.describe_collection(request.name)
        return pb.DescribeCollectionResponse(info=codec.encode_info(info))

    def ListCollections(
        self, request: pb.ListCollectionsRequest, context: grpc.ServicerContext
    ) -> pb.ListCollectionsResponse:
        infos = self.engine.list_collections()
        return pb.ListCollectionsResponse(collections=[codec.encode_info(i) for i in infos])

    def DropCollection(
        self, request: pb.DropCollectionRequest, context: grpc.ServicerContext
    ) -> pb.DropCollectionResponse:
        dropped = self.engine.drop_collection(request.name, missing_ok=request.missing_ok)
        return pb.DropCollectionResponse(dropped=dropped)

    def UpdateSchema(
        self, request: pb.UpdateSchemaRequest, context: grpc.ServicerContext
    ) -> pb.UpdateSchemaResponse:
        fields = [codec.decode_field(f) for f in request.fields]
        info = self.engine.update_schema(request.collection, fields)
        return pb.UpdateSchemaResponse(info=codec.encode_info(info))

    # --- points --------------------------------------------------------------------------

    def Upsert(self, request: pb.UpsertRequest, context: grpc.ServicerContext) -> pb.UpsertResponse:
        ids, vectors, attributes = codec.decode_upsert(request)
        watermark = self.engine.upsert(
            request.collection, ids, vectors, attributes, model=request.model
        )
        return pb.UpsertResponse(upserted=len(ids), watermark=watermark)

    def GetPoints(
        self, request: pb.GetPointsRequest, context: grpc.ServicerContext
    ) -> pb.GetPointsResponse:
        points = self.engine.get(
            request.collection,
            codec.decode_ids(request.ids),
            with_vectors=request.with_vectors,
            with_attributes=request.with_attributes,
            allow_missing=request.allow_missing,
        )
        return pb.GetPointsResponse(points=[codec.encode_point(p) for p in points])

    def DeletePoints(
        self, request: pb.DeletePointsRequest, context: grpc.ServicerContext
    ) -> pb.DeletePointsResponse:
        deleted, watermark = self.engine.delete(
            request.collection, codec.decode_ids(request.ids), filter=self._filter_of(request)
        )
        return pb.DeletePointsResponse(deleted=deleted, watermark=watermark)

    def Count(self, request: pb.CountRequest, context: grpc.ServicerContext) -> pb.CountResponse:
        return pb.CountResponse(count=self.engine.count(request.collection, self._filter_of(request)))

    def Scroll(self, request: pb.ScrollRequest, context: grpc.ServicerContext) -> pb.ScrollResponse:
        page = self.engine.scroll(
            request.collection,
            self._filter_of(request),
            request.limit or codec.DEFAULT_SCROLL_LIMIT,
            request.cursor,
            with_vectors=request.with_vectors,
            with_attributes=request.with_attributes,
        )
        return codec.encode_scroll_page(page)

    # --- search --------------------------------------------------------------------------

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        result = self.engine.search(
            request.collection,
            codec.decode_query(request.query),
            codec.decode_search_params(request.params),
            self._filter_of(request),
            model=request.model,
        )
        return pb.SearchResponse(result=codec.encode_search_result(result))

    def SearchBatch(
        self, request: pb.SearchBatchRequest, context: grpc.ServicerContext
    ) -> pb.SearchBatchResponse:
        queries = codec.decode_vectors(request.queries, what="queries")
        n = queries.shape[0]
        self.limits.check("max_batch_queries", n, "the number of queries in the request")
        filters: list[Any] | None
        if len(request.filters) == 0:
            filters = None
        elif len(request.filters) == 1:
            filters = [decode_filter(request.filters[0], self.limits)] * n
        elif len(request.filters) == n:
            filters = [decode_filter(f, self.limits) for f in request.filters]
        else:
            raise InvalidFilter(
                f"got {len(request.filters)} filters for {n} queries: give none, one, or one per query"
            )
        results = self.engine.search_batch(
            request.collection, queries, codec.decode_search_params(request.params), filters,
            model=request.model,
        )
        return pb.SearchBatchResponse(results=[codec.encode_search_result(r) for r in results])

    # --- bulk load -----------------------------------------------------------------------

    def BulkLoad(
        self, request_iterator: Iterator[pb.BulkLoadRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.BulkLoadResponse]:
        # One chunk at a time, each acknowledged once durable; the client's window of
        # unacknowledged chunks is the flow control.
        # A stalled client would pin this worker thread: wait for each chunk a bounded time.
        idle = self.limits.stream_idle_timeout_s
        if not idle:
            yield from self._bulk_load(request_iterator)
            return
        stream = IdleTimeoutStream(request_iterator, idle, "bulk load stream")
        try:
            yield from self._bulk_load(stream)
        finally:
            stream.close()

    def _bulk_load(self, stream: Iterator[pb.BulkLoadRequest]) -> Iterator[pb.BulkLoadResponse]:
        upserted = 0
        collection = ""
        for chunks, chunk in enumerate(stream, 1):
            deadline.checkpoint("bulk load")
            if not chunk.collection:
                raise InvalidArgument("bulk load: every chunk must name its collection")
            if collection and chunk.collection != collection:
                raise InvalidArgument("bulk load: all chunks of a stream must name one collection")
            collection = chunk.collection
            ids, vectors, attributes = codec.decode_bulk_chunk(chunk)
            watermark = self.engine.bulk_upsert(
                collection, ids, vectors, attributes,
                load_id=chunk.load_id, offset=chunk.offset, model=chunk.model,
            )
            upserted += len(ids)
            rows = (self.engine.load_rows(collection, chunk.load_id) or 0) if chunk.load_id else 0
            yield pb.BulkLoadResponse(
                upserted=upserted, chunks=chunks, watermark=watermark, rows_committed=rows,
                offset=chunk.offset, count=len(ids),
            )

    def LoadStatus(
        self, request: pb.LoadStatusRequest, context: grpc.ServicerContext
    ) -> pb.LoadStatusResponse:
        rows = self.engine.load_rows(request.collection, request.load_id)
        info = self.engine.describe_collection(request.collection)
        return pb.LoadStatusResponse(
            known=rows is not None, rows_committed=rows or 0, info=codec.encode_info(info)
        )

    def StartImport(
        self, request: pb.StartImportRequest, context: grpc.ServicerContext
    ) -> pb.Operation:
        op = self.engine.start_import(
            request.collection,
            codec.decode_import_source(request.source),
            request.load_id,
            request.batch_size,
        )
        return codec.encode_operation(op, self.engine.describe_collection(request.collection))

    def GetOperation(
        self, request: pb.GetOperationRequest, context: grpc.ServicerContext
    ) -> pb.Operation:
        op = self.engine.get_operation(request.id)
        try:
            info = self.engine.describe_collection(op.collection)
        except CollectionNotFound:
            info = None
        return codec.encode_operation(op, info)
