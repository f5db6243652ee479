"""Domain values shared by the engine and the transport codec (plain Python + numpy).

These are the in-process API: `Engine` methods take and return them, and the gRPC codec
translates them to and from `sievedb.v1` messages. Nothing here imports grpc.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, TypeAlias

import numpy as np

from sievedb_server.errors import InvalidArgument
from sievedb_server.limits import DEFAULT_LIMITS, STR_ID_MAX_BYTES, Limits
from sievedb_server.names import key_problem, validate_collection_name

__all__ = [
    "AttrValue",
    "Attributes",
    "CollectionInfo",
    "CollectionSpec",
    "FieldSpec",
    "FieldType",
    "Hit",
    "HnswParams",
    "Metric",
    "Plan",
    "PlanStage",
    "Point",
    "PointId",
    "ScrollPage",
    "SearchParams",
    "SearchResult",
    "validate_collection_name",
]

PointId: TypeAlias = int | str
"""A user-chosen id: an unsigned 64-bit integer or a non-empty string (≤ 510 UTF-8 bytes)."""

AttrValue: TypeAlias = None | bool | int | float | str | datetime | list[Any]
Attributes: TypeAlias = dict[str, AttrValue]

MAX_U64 = 2**64 - 1
MAX_STR_ID_BYTES = STR_ID_MAX_BYTES


def validate_point_id(pid: object) -> PointId:
    if isinstance(pid, bool):
        raise InvalidArgument(f"point id {pid!r} must be an unsigned 64-bit integer or a string")
    if isinstance(pid, int | np.integer):
        value = int(pid)
        if not 0 <= value <= MAX_U64:
            raise InvalidArgument(f"point id {value} is outside the unsigned 64-bit range")
        return value
    if isinstance(pid, str):
        try:
            size = len(pid.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidArgument(f"point id {pid!r} is not valid Unicode text") from None
        if not pid or size > MAX_STR_ID_BYTES:
            raise InvalidArgument(
                f"string point ids must be 1-{MAX_STR_ID_BYTES} UTF-8 bytes, got {size} bytes"
            )
        return pid
    raise InvalidArgument(f"point id {pid!r} must be an unsigned 64-bit integer or a string")


class Metric(StrEnum):
    COSINE = "cosine"  # score = cosine similarity, higher is closer; stored vectors normalised
    INNER_PRODUCT = "ip"  # score = dot product, higher is closer
    L2 = "l2"  # score = squared euclidean distance, lower is closer

    @property
    def higher_is_closer(self) -> bool:
        return self is not Metric.L2


class FieldType(StrEnum):
    KEYWORD = "keyword"
    KEYWORD_LIST = "keyword_list"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATETIME = "datetime"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    indexed: bool = True


@dataclass(frozen=True)
class HnswParams:
    """HNSW build and search parameters; documented in docs/PARAMETERS.md."""

    m: int = 16
    ef_construction: int = 200
    ef_search: int = 128
    # Below this many live points a collection is searched exactly (a scan beats the graph).
    full_scan_threshold: int = 5_000

    def validate(self) -> HnswParams:
        if not 2 <= self.m <= 128:
            raise InvalidArgument(f"hnsw m must be in [2, 128], got {self.m}")
        if not 1 <= self.ef_construction <= 4096:
            raise InvalidArgument(
                f"hnsw ef_construction must be in [1, 4096], got {self.ef_construction}"
            )
        if not 1 <= self.ef_search <= 4096:
            raise InvalidArgument(f"hnsw ef_search must be in [1, 4096], got {self.ef_search}")
        if self.full_scan_threshold < 0:
            raise InvalidArgument("hnsw full_scan_threshold must be >= 0")
        return self


MAX_DIM = DEFAULT_LIMITS.max_dim


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    dim: int
    metric: Metric = Metric.COSINE
    hnsw: HnswParams = field(default_factory=HnswParams)
    schema: tuple[FieldSpec, ...] = ()

    def validate(self, limits: Limits = DEFAULT_LIMITS) -> CollectionSpec:
        validate_collection_name(self.name)
        if self.dim < 1:
            raise InvalidArgument(f"dim must be positive, got {self.dim}")
        limits.check("max_dim", self.dim)
        self.hnsw.validate()
        names = [f.name for f in self.schema]
        for name in names:
            problem = key_problem(name)
            if problem is not None:  # a field name is an attribute key
                raise InvalidArgument(f"schema field name {name!r} {problem}")
        if len(set(names)) != len(names):
            raise InvalidArgument(f"schema declares a field twice: {names}")
        return self


@dataclass(frozen=True)
class CollectionInfo:
    spec: CollectionSpec
    point_count: int
    indexed_count: int
    watermark: int
    index_watermark: int
    disk_bytes: int


@dataclass(frozen=True)
class Point:
    id: PointId
    vector: np.ndarray | None = None
    attributes: Attributes | None = None


# Not frozen: a frozen dataclass pays object.__setattr__ per field, and a search builds k of these.
@dataclass(slots=True)
class Hit:
    id: PointId
    score: float
    attributes: Attributes | None = None
    vector: np.ndarray | None = None


class PlanStage(NamedTuple):
    """Time spent in one stage of a query (a tuple: every query builds a few)."""

    name: str
    nanos: int


@dataclass(slots=True)
class Plan:
    """How one query was executed: an explicit, loggable value (`explain` returns it)."""

    strategy: str
    allowed: int
    total: int
    ef: int = 0
    stages: list[PlanStage] = field(default_factory=list)
    detail: str = ""


@dataclass(frozen=True)
class SearchParams:
    k: int = 10
    ef: int | None = None
    exact: bool = False
    with_attributes: bool = True
    with_vectors: bool = False
    explain: bool = False

    def validate(self) -> SearchParams:
        if self.k <= 0:
            raise InvalidArgument(f"k must be positive, got {self.k}")
        if self.ef is not None and self.ef <= 0:
            raise InvalidArgument(f"ef must be positive, got {self.ef}")
        return self


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    plan: Plan | None = None


@dataclass(frozen=True)
class ScrollPage:
    points: list[Point]
    next_cursor: bytes = b""
