"""Hooks through which the engine reports events worth counting, without knowing who counts.

Core stays free of grpc and of any metrics library: the transport layer (Prometheus, see
`transport/metrics.py`) subclasses `EngineObserver` and registers it with
`Engine.add_observer`. The engine calls the hooks synchronously on the request thread, so an
implementation must be cheap and must not raise (it runs on the query path).

`CollectionStats` is the snapshot a scrape-time collector reads (`Engine.stats()`); it is
computed on demand, never maintained on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

from sievedb_server.core.types import Plan

__all__ = ["CollectionStats", "EngineObserver"]


class EngineObserver:
    """Base class with no-op hooks; override the ones you need."""

    def query_planned(self, collection: str, plan: Plan, filtered: bool) -> None:
        """One k-NN query ran with `plan` (final strategy, fallbacks included)."""

    def rows_bulk_loaded(self, collection: str, rows: int) -> None:
        """A bulk-load chunk of `rows` points was committed (durable)."""


@dataclass(frozen=True)
class CollectionStats:
    """Sizes of one collection at one instant."""

    name: str
    points: int  # live points
    indexed: int  # live points whose current vector is in the graph
    pending: int  # live points waiting for the background indexer
    graph_deleted: int  # graph entries that are deleted or superseded (memory until a rebuild)
    disk_bytes: int
