"""The client's small, immutable result types (plain Python + numpy; no grpc, no server).

Vectors come back as float32 numpy arrays; ids are `int` (unsigned 64-bit) or `str`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np

__all__ = [
    "AttrValue",
    "Attributes",
    "BulkLoadResult",
    "CollectionInfo",
    "DeleteResult",
    "Field",
    "Hit",
    "HnswConfig",
    "LoadStatus",
    "Operation",
    "Plan",
    "PlanStage",
    "Point",
    "PointId",
    "ScrollPage",
    "SearchResult",
    "UpsertResult",
]

PointId: TypeAlias = int | str
AttrValue: TypeAlias = None | bool | int | float | str | datetime | list[Any]
Attributes: TypeAlias = dict[str, AttrValue]

FIELD_TYPES = ("keyword", "keyword_list", "integer", "float", "boolean", "datetime")
METRICS = ("cosine", "ip", "l2")


@dataclass(frozen=True)
class Field:
    """A schema field: `type` is one of keyword, keyword_list, integer, float, boolean, datetime."""

    name: str
    type: str
    indexed: bool = True


@dataclass(frozen=True)
class HnswConfig:
    m: int
    ef_construction: int
    ef_search: int
    full_scan_threshold: int


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    dim: int
    metric: str  # "cosine", "ip" or "l2"
    hnsw: HnswConfig
    schema: tuple[Field, ...]
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


@dataclass(frozen=True)
class Hit:
    id: PointId
    score: float
    attributes: Attributes | None = None
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class PlanStage:
    name: str
    nanos: int


@dataclass(frozen=True)
class Plan:
    """How the server executed a query (returned when `explain=True`)."""

    strategy: str
    allowed: int
    total: int
    ef: int
    stages: tuple[PlanStage, ...] = ()
    detail: str = ""

    def describe(self) -> str:
        stages = ", ".join(f"{s.name} {s.nanos / 1e6:.3f} ms" for s in self.stages)
        text = f"strategy={self.strategy} allowed={self.allowed}/{self.total} ef={self.ef}"
        if stages:
            text += f" [{stages}]"
        if self.detail:
            text += f" — {self.detail}"
        return text


@dataclass(frozen=True)
class SearchResult(Sequence[Hit]):
    """The hits of one query, best first; also a sequence of `Hit`."""

    hits: tuple[Hit, ...]
    plan: Plan | None = None

    @property
    def ids(self) -> np.ndarray:
        """Hit ids as a numpy array: uint64 when every id is numeric, else dtype object."""
        ids = [h.id for h in self.hits]
        if all(isinstance(i, int) for i in ids):
            return np.array(ids, dtype=np.uint64)
        return np.array(ids, dtype=object)

    @property
    def scores(self) -> np.ndarray:
        return np.array([h.score for h in self.hits], dtype=np.float32)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, index: Any) -> Any:
        return self.hits[index]

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)


@dataclass(frozen=True)
class ScrollPage:
    points: tuple[Point, ...]
    next_cursor: bytes = b""  # empty when there is nothing more


@dataclass(frozen=True)
class UpsertResult:
    upserted: int
    watermark: int  # the write sequence number of the last committed batch


@dataclass(frozen=True)
class DeleteResult:
    deleted: int
    watermark: int


@dataclass(frozen=True)
class BulkLoadResult:
    upserted: int  # points sent and committed by this call
    chunks: int
    watermark: int  # write sequence number of the last chunk
    rows_committed: int  # source rows the load id has committed (0 without a load id)


@dataclass(frozen=True)
class LoadStatus:
    known: bool  # the server has committed at least one chunk of this load id
    rows_committed: int  # resume from this source row
    info: CollectionInfo  # point_count vs indexed_count = index-build progress


@dataclass(frozen=True)
class Operation:
    """A server-side import: `state` is RUNNING, SUCCEEDED or FAILED."""

    id: str
    collection: str
    state: str
    rows_done: int
    rows_total: int
    error: str
    load_id: str
    info: CollectionInfo | None

    @property
    def done(self) -> bool:
        return self.state != "RUNNING"
