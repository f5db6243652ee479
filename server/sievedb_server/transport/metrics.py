"""Prometheus metrics of one server, served over HTTP by `prometheus_client`.

Every `ServerMetrics` owns its own `CollectorRegistry` (never the process-global one), so tests
and embedders can run many servers in one process. Metric names:

| metric | type | labels | what |
|---|---|---|---|
| `sievedb_grpc_requests_total` | counter | service, method, code | finished RPCs by final status |
| `sievedb_grpc_request_duration_seconds` | histogram | service, method | RPC latency, 0.1 ms … 10 s |
| `sievedb_grpc_requests_in_flight` | gauge | service, method | RPCs being served now |
| `sievedb_auth_failures_total` | counter | code | UNAUTHENTICATED / PERMISSION_DENIED answers |
| `sievedb_search_plans_total` | counter | plan, filtered | k-NN queries by executed strategy |
| `sievedb_search_allowed_points` | histogram | plan | |allowed| of filtered queries |
| `sievedb_search_filter_selectivity` | histogram | — | |allowed| / live points, filtered queries |
| `sievedb_bulk_load_rows_total` | counter | — | rows committed by bulk loads and imports |
| `sievedb_collections` | gauge | — | open collections (read at scrape time) |
| `sievedb_collection_points` | gauge | collection | live points (scrape time) |
| `sievedb_collection_indexed_points` | gauge | collection | live points in the HNSW graph |
| `sievedb_collection_pending_points` | gauge | collection | points waiting for the indexer |
| `sievedb_collection_graph_deleted_points` | gauge | collection | deleted/superseded graph entries |
| `sievedb_collection_disk_bytes` | gauge | collection | LMDB + index files on disk |

Request metrics are recorded by `interceptors.RequestInterceptor`; plan and bulk-load metrics
come from the engine through the `core.observe.EngineObserver` hook; collection sizes are read
by a custom collector only when Prometheus scrapes (nothing on the hot path).

The HTTP endpoint is plaintext and unauthenticated, so the gRPC bind rule applies to it too:
loopback unless configured, and a non-loopback host is refused unless the operator accepts the
risk (`--insecure`). See `check_metrics_bind`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sievedb_server.core.observe import EngineObserver
from sievedb_server.transport.security import InsecureBind, is_loopback

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from sievedb_server.core.engine import Engine
    from sievedb_server.core.types import Plan

__all__ = [
    "ALLOWED_BUCKETS",
    "LATENCY_BUCKETS",
    "InvalidMetricsBind",
    "MetricsEndpoint",
    "ServerMetrics",
    "check_metrics_bind",
]

log = logging.getLogger("sievedb.metrics")

# 0.1 ms … 10 s, roughly 1-2.5-5 per decade: a cached exact scan is ~0.1 ms, a bulk-load
# chunk or a filtered traversal under load can take seconds.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
ALLOWED_BUCKETS = (0, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
SELECTIVITY_BUCKETS = (0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
AUTH_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})


class InvalidMetricsBind(InsecureBind):
    """Refused: a non-loopback metrics host without --insecure."""


def split_method(full_method: str) -> tuple[str, str]:
    """`/sievedb.v1.SieveDB/Search` → (`sievedb.v1.SieveDB`, `Search`)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


class _PlanObserver(EngineObserver):
    def __init__(self, metrics: ServerMetrics) -> None:
        self.m = metrics

    def query_planned(self, collection: str, plan: Plan, filtered: bool) -> None:
        self.m.plans.labels(plan.strategy, "true" if filtered else "false").inc()
        if filtered:
            self.m.allowed.labels(plan.strategy).observe(plan.allowed)
            if plan.total > 0:
                self.m.selectivity.observe(plan.allowed / plan.total)

    def rows_bulk_loaded(self, collection: str, rows: int) -> None:
        self.m.bulk_rows.inc(rows)


class _CollectionSizes(Collector):
    """Reads `Engine.stats()` when scraped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self.engine.stats()
        except Exception:  # a closing engine must not break the scrape of the other metrics
            log.debug("collection stats unavailable", exc_info=True)
            return
        families = {
            "points": ("live points", lambda s: s.points),
            "indexed_points": ("live points whose vector is in the HNSW graph", lambda s: s.indexed),
            "pending_points": ("points waiting for the background indexer", lambda s: s.pending),
            "graph_deleted_points": (
                "HNSW entries deleted or superseded (memory until a rebuild)",
                lambda s: s.graph_deleted,
            ),
            "disk_bytes": ("bytes on disk (LMDB and index files)", lambda s: s.disk_bytes),
        }
        yield GaugeMetricFamily("sievedb_collections", "open collections", value=len(stats))
        for suffix, (doc, value_of) in families.items():
            family = GaugeMetricFamily(f"sievedb_collection_{suffix}", doc, labels=["collection"])
            for s in stats:
                family.add_metric([s.name], value_of(s))
            yield family


class ServerMetrics:
    """The metrics of one server, in a registry of its own."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "sievedb_grpc_requests", "finished RPCs by final status code",
            ["service", "method", "code"], registry=r,
        )
        self.latency = Histogram(
            "sievedb_grpc_request_duration_seconds", "RPC latency from first byte to status",
            ["service", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge(
            "sievedb_grpc_requests_in_flight", "RPCs being served", ["service", "method"],
            registry=r,
        )
        self.auth_failures = Counter(
            "sievedb_auth_failures", "calls refused by authentication or authorization",
            ["code"], registry=r,
        )
        self.plans = Counter(
            "sievedb_search_plans", "k-NN queries by the strategy that ran (fallbacks as a+b)",
            ["plan", "filtered"], registry=r,
        )
        self.allowed = Histogram(
            "sievedb_search_allowed_points", "points a filtered query's filter allows",
            ["plan"], buckets=ALLOWED_BUCKETS, registry=r,
        )
        self.selectivity = Histogram(
            "sievedb_search_filter_selectivity", "allowed / live points of filtered queries",
            buckets=SELECTIVITY_BUCKETS, registry=r,
        )
        self.bulk_rows = Counter(
            "sievedb_bulk_load_rows", "rows committed by bulk loads and server-side imports",
            registry=r,
        )
        self.observer = _PlanObserver(self)
        self.engine: Engine | None = None
        if engine is not None:
            self.attach(engine)

    def attach(self, engine: Engine) -> None:
        """Observe `engine`'s plans and bulk loads, and report its collection sizes."""
        if self.engine is not None:
            raise RuntimeError("these metrics already observe an engine")
        self.engine = engine
        engine.add_observer(self.observer)
        self.registry.register(_CollectionSizes(engine))

    def detach(self) -> None:
        if self.engine is not None:
            self.engine.remove_observer(self.observer)

    # --- called by the RequestInterceptor ------------------------------------------------

    def call_started(self, full_method: str) -> None:
        self.in_flight.labels(*split_method(full_method)).inc()

    def call_finished(self, full_method: str, code: str, seconds: float) -> None:
        service, method = split_method(full_method)
        self.in_flight.labels(service, method).dec()
        self.requests.labels(service, method, code).inc()
        self.latency.labels(service, method).observe(seconds)
        if code in AUTH_CODES:
            self.auth_failures.labels(code).inc()

    # --- exposition ----------------------------------------------------------------------

    def serve_http(self, host: str, port: int, *, allow_insecure: bool = False) -> MetricsEndpoint:
        """Start the `/metrics` HTTP endpoint (port 0 picks a free port)."""
        for warning in check_metrics_bind(host, allow_insecure=allow_insecure):
            log.warning(warning)
        httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsEndpoint(httpd, thread)


class MetricsEndpoint:
    """A running metrics HTTP server; `close()` stops it and frees the port."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = str(httpd.server_address[0])
        self.port = int(httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def check_metrics_bind(host: str, *, allow_insecure: bool) -> list[str]:
    """Raise `InsecureBind` for a non-loopback metrics host, or return warnings to log.

    The endpoint has neither TLS nor authentication, and it names collections and their
    traffic; like the gRPC port, it stays on loopback unless the operator accepts the risk.
    """
    if is_loopback(host):
        return []
    if not allow_insecure:
        raise InvalidMetricsBind(
            f"refusing to serve metrics on {host}: the endpoint is plaintext and "
            "unauthenticated. Bind --metrics-host 127.0.0.1 (scrape through a local agent or "
            "a TLS proxy), or pass --insecure to accept the risk"
        )
    return [f"INSECURE: metrics endpoint on non-loopback {host} is plaintext and unauthenticated"]
