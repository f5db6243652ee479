from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    COSINE: _ClassVar[Metric]
    INNER_PRODUCT: _ClassVar[Metric]
    L2: _ClassVar[Metric]

class FieldType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIELD_TYPE_UNSPECIFIED: _ClassVar[FieldType]
    KEYWORD: _ClassVar[FieldType]
    KEYWORD_LIST: _ClassVar[FieldType]
    INTEGER: _ClassVar[FieldType]
    FLOAT: _ClassVar[FieldType]
    BOOLEAN: _ClassVar[FieldType]
    DATETIME: _ClassVar[FieldType]
METRIC_UNSPECIFIED: Metric
COSINE: Metric
INNER_PRODUCT: Metric
L2: Metric
FIELD_TYPE_UNSPECIFIED: FieldType
KEYWORD: FieldType
KEYWORD_LIST: FieldType
INTEGER: FieldType
FLOAT: FieldType
BOOLEAN: FieldType
DATETIME: FieldType

class PointId(_message.Message):
    __slots__ = ("num", "str")
    NUM_FIELD_NUMBER: _ClassVar[int]
    STR_FIELD_NUMBER: _ClassVar[int]
    num: int
    str: str
    def __init__(self, num: _Optional[int] = ..., str: _Optional[str] = ...) -> None: ...

class Vectors(_message.Message):
    __slots__ = ("data", "dim", "count")
    DATA_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    dim: int
    count: int
    def __init__(self, data: _Optional[bytes] = ..., dim: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class ListValue(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[AttrValue]
    def __init__(self, values: _Optional[_Iterable[_Union[AttrValue, _Mapping]]] = ...) -> None: ...

class AttrValue(_message.Message):
    __slots__ = ("null_value", "bool_value", "int_value", "float_value", "string_value", "list_value", "datetime_value")
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATETIME_VALUE_FIELD_NUMBER: _ClassVar[int]
    null_value: bool
    bool_value: bool
    int_value: int
    float_value: float
    string_value: str
    list_value: ListValue
    datetime_value: int
    def __init__(self, null_value: _Optional[bool] = ..., bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ..., list_value: _Optional[_Union[ListValue, _Mapping]] = ..., datetime_value: _Optional[int] = ...) -> None: ...

class Attributes(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AttrValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AttrValue, _Mapping]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.MessageMap[str, AttrValue]
    def __init__(self, fields: _Optional[_Mapping[str, AttrValue]] = ...) -> None: ...

class HnswConfig(_message.Message):
    __slots__ = ("m", "ef_construction", "ef_search", "full_scan_threshold")
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    FULL_SCAN_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    m: int
    ef_construction: int
    ef_search: int
    full_scan_threshold: int
    def __init__(self, m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., ef_search: _Optional[int] = ..., full_scan_threshold: _Optional[int] = ...) -> None: ...

class FieldSchema(_message.Message):
    __slots__ = ("name", "type", "indexed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: FieldType
    indexed: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[FieldType, str]] = ..., indexed: _Optional[bool] = ...) -> None: ...

class CollectionSpec(_message.Message):
    __slots__ = ("name", "dim", "metric", "hnsw", "schema")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: Metric
    hnsw: HnswConfig
    schema: _containers.RepeatedCompositeFieldContainer[FieldSchema]
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., hnsw: _Optional[_Union[HnswConfig, _Mapping]] = ..., schema: _Optional[_Iterable[_Union[FieldSchema, _Mapping]]] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("spec", "point_count", "indexed_count", "watermark", "index_watermark", "disk_bytes")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEXED_COUNT_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    INDEX_WATERMARK_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    spec: CollectionSpec
    point_count: int
    indexed_count: int
    watermark: int
    index_watermark: int
    disk_bytes: int
    def __init__(self, spec: _Optional[_Union[CollectionSpec, _Mapping]] = ..., point_count: _Optional[int] = ..., indexed_count: _Optional[int] = ..., watermark: _Optional[int] = ..., index_watermark: _Optional[int] = ..., disk_bytes: _Optional[int] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: CollectionSpec
    def __init__(self, spec: _Optional[_Union[CollectionSpec, _Mapping]] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: CollectionInfo
    def __init__(self, info: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DescribeCollectionResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: CollectionInfo
    def __init__(self, info: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name", "missing_ok")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MISSING_OK_FIELD_NUMBER: _ClassVar[int]
    name: str
    missing_ok: bool
    def __init__(self, name: _Optional[str] = ..., missing_ok: _Optional[bool] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ("dropped",)
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    dropped: bool
    def __init__(self, dropped: _Optional[bool] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("must", "should", "must_not", "min_should", "expr")
    MUST_FIELD_NUMBER: _ClassVar[int]
    SHOULD_FIELD_NUMBER: _ClassVar[int]
    MUST_NOT_FIELD_NUMBER: _ClassVar[int]
    MIN_SHOULD_FIELD_NUMBER: _ClassVar[int]
    EXPR_FIELD_NUMBER: _ClassVar[int]
    must: _containers.RepeatedCompositeFieldContainer[Condition]
    should: _containers.RepeatedCompositeFieldContainer[Condition]
    must_not: _containers.RepeatedCompositeFieldContainer[Condition]
    min_should: int
    expr: str
    def __init__(self, must: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., should: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., must_not: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., min_should: _Optional[int] = ..., expr: _Optional[str] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("field", "filter", "has_id", "is_empty", "is_null")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    HAS_ID_FIELD_NUMBER: _ClassVar[int]
    IS_EMPTY_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    field: FieldCondition
    filter: Filter
    has_id: HasIdCondition
    is_empty: IsEmptyCondition
    is_null: IsNullCondition
    def __init__(self, field: _Optional[_Union[FieldCondition, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., has_id: _Optional[_Union[HasIdCondition, _Mapping]] = ..., is_empty: _Optional[_Union[IsEmptyCondition, _Mapping]] = ..., is_null: _Optional[_Union[IsNullCondition, _Mapping]] = ...) -> None: ...

class FieldCondition(_message.Message):
    __slots__ = ("key", "match", "range", "values_count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    VALUES_COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    match: Match
    range: Range
    values_count: ValuesCount
    def __init__(self, key: _Optional[str] = ..., match: _Optional[_Union[Match, _Mapping]] = ..., range: _Optional[_Union[Range, _Mapping]] = ..., values_count: _Optional[_Union[ValuesCount, _Mapping]] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("value", "any")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    EXCEPT_FIELD_NUMBER: _ClassVar[int]
    value: AttrValue
    any: ListValue
    def __init__(self, value: _Optional[_Union[AttrValue, _Mapping]] = ..., any: _Optional[_Union[ListValue, _Mapping]] = ..., **kwargs) -> None: ...

class Range(_message.Message):
    __slots__ = ("gt", "gte", "lt", "lte")
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    gt: AttrValue
    gte: AttrValue
    lt: AttrValue
    lte: AttrValue
    def __init__(self, gt: _Optional[_Union[AttrValue, _Mapping]] = ..., gte: _Optional[_Union[AttrValue, _Mapping]] = ..., lt: _Optional[_Union[AttrValue, _Mapping]] = ..., lte: _Optional[_Union[AttrValue, _Mapping]] = ...) -> None: ...

class ValuesCount(_message.Message):
    __slots__ = ("gt", "gte", "lt", "lte")
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    gt: int
    gte: int
    lt: int
    lte: int
    def __init__(self, gt: _Optional[int] = ..., gte: _Optional[int] = ..., lt: _Optional[int] = ..., lte: _Optional[int] = ...) -> None: ...

class HasIdCondition(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedCompositeFieldContainer[PointId]
    def __init__(self, ids: _Optional[_Iterable[_Union[PointId, _Mapping]]] = ...) -> None: ...

class IsEmptyCondition(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class IsNullCondition(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("id", "vector", "attributes")
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    id: PointId
    vector: bytes
    attributes: Attributes
    def __init__(self, id: _Optional[_Union[PointId, _Mapping]] = ..., vector: _Optional[bytes] = ..., attributes: _Optional[_Union[Attributes, _Mapping]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "ids", "vectors", "attributes", "model")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedCompositeFieldContainer[PointId]
    vectors: Vectors
    attributes: _containers.RepeatedCompositeFieldContainer[Attributes]
    model: str
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[_Union[PointId, _Mapping]]] = ..., vectors: _Optional[_Union[Vectors, _Mapping]] = ..., attributes: _Optional[_Iterable[_Union[Attributes, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("upserted", "watermark")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    watermark: int
    def __init__(self, upserted: _Optional[int] = ..., watermark: _Optional[int] = ...) -> None: ...

class GetPointsRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_vectors", "with_attributes", "allow_missing")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    WITH_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedCompositeFieldContainer[PointId]
    with_vectors: bool
    with_attributes: bool
    allow_missing: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[_Union[PointId, _Mapping]]] = ..., with_vectors: _Optional[bool] = ..., with_attributes: _Optional[bool] = ..., allow_missing: _Optional[bool] = ...) -> None: ...

class GetPointsResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class DeletePointsRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedCompositeFieldContainer[PointId]
    filter: Filter
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[_Union[PointId, _Mapping]]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class DeletePointsResponse(_message.Message):
    __slots__ = ("deleted", "watermark")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    watermark: int
    def __init__(self, deleted: _Optional[int] = ..., watermark: _Optional[int] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: Filter
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class ScrollRequest(_message.Message):
    __slots__ = ("collection", "filter", "limit", "cursor", "with_vectors", "with_attributes")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    WITH_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: Filter
    limit: int
    cursor: bytes
    with_vectors: bool
    with_attributes: bool
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., limit: _Optional[int] = ..., cursor: _Optional[bytes] = ..., with_vectors: _Optional[bool] = ..., with_attributes: _Optional[bool] = ...) -> None: ...

class ScrollResponse(_message.Message):
    __slots__ = ("points", "next_cursor")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    next_cursor: bytes
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., next_cursor: _Optional[bytes] = ...) -> None: ...

class UpdateSchemaRequest(_message.Message):
    __slots__ = ("collection", "fields")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    fields: _containers.RepeatedCompositeFieldContainer[FieldSchema]
    def __init__(self, collection: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[FieldSchema, _Mapping]]] = ...) -> None: ...

class UpdateSchemaResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: CollectionInfo
    def __init__(self, info: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("k", "ef", "exact", "with_attributes", "with_vectors", "explain")
    K_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    WITH_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    k: int
    ef: int
    exact: bool
    with_attributes: bool
    with_vectors: bool
    explain: bool
    def __init__(self, k: _Optional[int] = ..., ef: _Optional[int] = ..., exact: _Optional[bool] = ..., with_attributes: _Optional[bool] = ..., with_vectors: _Optional[bool] = ..., explain: _Optional[bool] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "attributes", "vector")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    id: PointId
    score: float
    attributes: Attributes
    vector: bytes
    def __init__(self, id: _Optional[_Union[PointId, _Mapping]] = ..., score: _Optional[float] = ..., attributes: _Optional[_Union[Attributes, _Mapping]] = ..., vector: _Optional[bytes] = ...) -> None: ...

class PlanStage(_message.Message):
    __slots__ = ("name", "nanos")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NANOS_FIELD_NUMBER: _ClassVar[int]
    name: str
    nanos: int
    def __init__(self, name: _Optional[str] = ..., nanos: _Optional[int] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("strategy", "allowed", "total", "ef", "stages", "detail")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    allowed: int
    total: int
    ef: int
    stages: _containers.RepeatedCompositeFieldContainer[PlanStage]
    detail: str
    def __init__(self, strategy: _Optional[str] = ..., allowed: _Optional[int] = ..., total: _Optional[int] = ..., ef: _Optional[int] = ..., stages: _Optional[_Iterable[_Union[PlanStage, _Mapping]]] = ..., detail: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "query", "params", "filter", "model")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    collection: str
    query: Vectors
    params: SearchParams
    filter: Filter
    model: str
    def __init__(self, collection: _Optional[str] = ..., query: _Optional[_Union[Vectors, _Mapping]] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class SearchResult(_message.Message):
    __slots__ = ("hits", "plan")
    HITS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    plan: Plan
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: SearchResult
    def __init__(self, result: _Optional[_Union[SearchResult, _Mapping]] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("collection", "queries", "params", "filters", "model")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: Vectors
    params: SearchParams
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    model: str
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[_Union[Vectors, _Mapping]] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class SearchBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResult, _Mapping]]] = ...) -> None: ...

class BulkLoadRequest(_message.Message):
    __slots__ = ("collection", "load_id", "offset", "ids", "vectors", "attributes", "model")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    LOAD_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    collection: str
    load_id: str
    offset: int
    ids: _containers.RepeatedCompositeFieldContainer[PointId]
    vectors: Vectors
    attributes: _containers.RepeatedCompositeFieldContainer[Attributes]
    model: str
    def __init__(self, collection: _Optional[str] = ..., load_id: _Optional[str] = ..., offset: _Optional[int] = ..., ids: _Optional[_Iterable[_Union[PointId, _Mapping]]] = ..., vectors: _Optional[_Union[Vectors, _Mapping]] = ..., attributes: _Optional[_Iterable[_Union[Attributes, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class BulkLoadResponse(_message.Message):
    __slots__ = ("upserted", "chunks", "watermark", "rows_committed", "offset", "count")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    ROWS_COMMITTED_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    chunks: int
    watermark: int
    rows_committed: int
    offset: int
    count: int
    def __init__(self, upserted: _Optional[int] = ..., chunks: _Optional[int] = ..., watermark: _Optional[int] = ..., rows_committed: _Optional[int] = ..., offset: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class LoadStatusRequest(_message.Message):
    __slots__ = ("collection", "load_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    LOAD_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    load_id: str
    def __init__(self, collection: _Optional[str] = ..., load_id: _Optional[str] = ...) -> None: ...

class LoadStatusResponse(_message.Message):
    __slots__ = ("known", "rows_committed", "info")
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    ROWS_COMMITTED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    known: bool
    rows_committed: int
    info: CollectionInfo
    def __init__(self, known: _Optional[bool] = ..., rows_committed: _Optional[int] = ..., info: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class ImportSource(_message.Message):
    __slots__ = ("path", "format", "vector_column", "id_column", "attribute_columns", "attributes_path", "ids_path", "dataset", "limit", "id_type")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_COLUMN_FIELD_NUMBER: _ClassVar[int]
    ID_COLUMN_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_PATH_FIELD_NUMBER: _ClassVar[int]
    IDS_PATH_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ID_TYPE_FIELD_NUMBER: _ClassVar[int]
    path: str
    format: str
    vector_column: str
    id_column: str
    attribute_columns: _containers.RepeatedScalarFieldContainer[str]
    attributes_path: str
    ids_path: str
    dataset: str
    limit: int
    id_type: str
    def __init__(self, path: _Optional[str] = ..., format: _Optional[str] = ..., vector_column: _Optional[str] = ..., id_column: _Optional[str] = ..., attribute_columns: _Optional[_Iterable[str]] = ..., attributes_path: _Optional[str] = ..., ids_path: _Optional[str] = ..., dataset: _Optional[str] = ..., limit: _Optional[int] = ..., id_type: _Optional[str] = ...) -> None: ...

class StartImportRequest(_message.Message):
    __slots__ = ("collection", "source", "load_id", "batch_size")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LOAD_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    source: ImportSource
    load_id: str
    batch_size: int
    def __init__(self, collection: _Optional[str] = ..., source: _Optional[_Union[ImportSource, _Mapping]] = ..., load_id: _Optional[str] = ..., batch_size: _Optional[int] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("id", "collection", "state", "rows_done", "rows_total", "error", "load_id", "info")
    ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROWS_DONE_FIELD_NUMBER: _ClassVar[int]
    ROWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LOAD_ID_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    id: str
    collection: str
    state: str
    rows_done: int
    rows_total: int
    error: str
    load_id: str
    info: CollectionInfo
    def __init__(self, id: _Optional[str] = ..., collection: _Optional[str] = ..., state: _Optional[str] = ..., rows_done: _Optional[int] = ..., rows_total: _Optional[int] = ..., error: _Optional[str] = ..., load_id: _Optional[str] = ..., info: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class GetOperationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class SimplexSpec(_message.Message):
    __slots__ = ("num_classes", "dim", "class_to_vertex")
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    CLASS_TO_VERTEX_FIELD_NUMBER: _ClassVar[int]
    num_classes: int
    dim: int
    class_to_vertex: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, num_classes: _Optional[int] = ..., dim: _Optional[int] = ..., class_to_vertex: _Optional[_Iterable[int]] = ...) -> None: ...

class ModelSpec(_message.Message):
    __slots__ = ("id", "dim", "normalized", "simplex", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_FIELD_NUMBER: _ClassVar[int]
    SIMPLEX_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    dim: int
    normalized: bool
    simplex: SimplexSpec
    description: str
    def __init__(self, id: _Optional[str] = ..., dim: _Optional[int] = ..., normalized: _Optional[bool] = ..., simplex: _Optional[_Union[SimplexSpec, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("spec", "state", "generation", "adapter", "is_default")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    spec: ModelSpec
    state: str
    generation: int
    adapter: str
    is_default: bool
    def __init__(self, spec: _Optional[_Union[ModelSpec, _Mapping]] = ..., state: _Optional[str] = ..., generation: _Optional[int] = ..., adapter: _Optional[str] = ..., is_default: _Optional[bool] = ...) -> None: ...

class SetProbeSetRequest(_message.Message):
    __slots__ = ("collection", "item_ids", "labels", "replace")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[int]
    replace: bool
    def __init__(self, collection: _Optional[str] = ..., item_ids: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[int]] = ..., replace: _Optional[bool] = ...) -> None: ...

class SetProbeSetResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: int
    def __init__(self, items: _Optional[int] = ...) -> None: ...

class RegisterModelRequest(_message.Message):
    __slots__ = ("collection", "model", "probe_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROBE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    model: ModelSpec
    probe_vectors: Vectors
    def __init__(self, collection: _Optional[str] = ..., model: _Optional[_Union[ModelSpec, _Mapping]] = ..., probe_vectors: _Optional[_Union[Vectors, _Mapping]] = ...) -> None: ...

class RegisterModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class CheckModelRequest(_message.Message):
    __slots__ = ("collection", "model", "probe_vectors", "thresholds_json", "seed")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROBE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_JSON_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    collection: str
    model: str
    probe_vectors: Vectors
    thresholds_json: str
    seed: int
    def __init__(self, collection: _Optional[str] = ..., model: _Optional[str] = ..., probe_vectors: _Optional[_Union[Vectors, _Mapping]] = ..., thresholds_json: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class CheckModelResponse(_message.Message):
    __slots__ = ("compatible", "reasons", "report_json")
    COMPATIBLE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    compatible: bool
    reasons: _containers.RepeatedScalarFieldContainer[str]
    report_json: str
    def __init__(self, compatible: _Optional[bool] = ..., reasons: _Optional[_Iterable[str]] = ..., report_json: _Optional[str] = ...) -> None: ...

class PromoteModelRequest(_message.Message):
    __slots__ = ("collection", "model", "adapter", "thresholds_json", "make_default", "seed")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_JSON_FIELD_NUMBER: _ClassVar[int]
    MAKE_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    collection: str
    model: str
    adapter: str
    thresholds_json: str
    make_default: bool
    seed: int
    def __init__(self, collection: _Optional[str] = ..., model: _Optional[str] = ..., adapter: _Optional[str] = ..., thresholds_json: _Optional[str] = ..., make_default: _Optional[bool] = ..., seed: _Optional[int] = ...) -> None: ...

class PromoteModelResponse(_message.Message):
    __slots__ = ("model", "report_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    report_json: str
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ..., report_json: _Optional[str] = ...) -> None: ...

class AliasInfo(_message.Message):
    __slots__ = ("alias", "collection", "previous")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    alias: str
    collection: str
    previous: str
    def __init__(self, alias: _Optional[str] = ..., collection: _Optional[str] = ..., previous: _Optional[str] = ...) -> None: ...

class SetAliasRequest(_message.Message):
    __slots__ = ("alias", "collection")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    alias: str
    collection: str
    def __init__(self, alias: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class SetAliasResponse(_message.Message):
    __slots__ = ("alias",)
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    alias: AliasInfo
    def __init__(self, alias: _Optional[_Union[AliasInfo, _Mapping]] = ...) -> None: ...

class RollbackAliasRequest(_message.Message):
    __slots__ = ("alias",)
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    alias: str
    def __init__(self, alias: _Optional[str] = ...) -> None: ...

class DeleteAliasRequest(_message.Message):
    __slots__ = ("alias",)
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    alias: str
    def __init__(self, alias: _Optional[str] = ...) -> None: ...

class DeleteAliasResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class ListAliasesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAliasesResponse(_message.Message):
    __slots__ = ("aliases",)
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    aliases: _containers.RepeatedCompositeFieldContainer[AliasInfo]
    def __init__(self, aliases: _Optional[_Iterable[_Union[AliasInfo, _Mapping]]] = ...) -> None: ...

class SnapshotInfo(_message.Message):
    __slots__ = ("name", "collection", "size_bytes", "sha256", "created_at", "watermark", "point_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    collection: str
    size_bytes: int
    sha256: str
    created_at: str
    watermark: int
    point_count: int
    def __init__(self, name: _Optional[str] = ..., collection: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., created_at: _Optional[str] = ..., watermark: _Optional[int] = ..., point_count: _Optional[int] = ...) -> None: ...

class CreateSnapshotRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class CreateSnapshotResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: SnapshotInfo
    def __init__(self, snapshot: _Optional[_Union[SnapshotInfo, _Mapping]] = ...) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[SnapshotInfo]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[SnapshotInfo, _Mapping]]] = ...) -> None: ...

class DeleteSnapshotRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteSnapshotResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class DownloadSnapshotRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("snapshot", "data")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    snapshot: SnapshotInfo
    data: bytes
    def __init__(self, snapshot: _Optional[_Union[SnapshotInfo, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class RestoreSnapshotRequest(_message.Message):
    __slots__ = ("collection", "snapshot", "overwrite", "sha256", "data")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    collection: str
    snapshot: str
    overwrite: bool
    sha256: str
    data: bytes
    def __init__(self, collection: _Optional[str] = ..., snapshot: _Optional[str] = ..., overwrite: _Optional[bool] = ..., sha256: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class RestoreSnapshotResponse(_message.Message):
    __slots__ = ("info", "snapshot")
    INFO_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    info: CollectionInfo
    snapshot: SnapshotInfo
    def __init__(self, info: _Optional[_Union[CollectionInfo, _Mapping]] = ..., snapshot: _Optional[_Union[SnapshotInfo, _Mapping]] = ...) -> None: ...
