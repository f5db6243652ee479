"""Prometheus metrics: a real server on port 0 with its metrics endpoint on a free port.

Each test does a known set of RPCs (including failing ones), scrapes `/metrics` over HTTP,
parses the exposition text with `prometheus_client.parser` and checks that every counter and
histogram moved by exactly the expected amount.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SpawnServer, free_port
from prometheus_client.parser import text_string_to_metric_families
from sievedb import Client
from sievedb.errors import CollectionNotFound, InvalidArgument, PermissionDenied, Unauthenticated
from sievedb_server.core.engine import Engine
from sievedb_server.transport.auth import KeyStore
from sievedb_server.transport.interceptors import _wrap_stream
from sievedb_server.transport.metrics import (
    LATENCY_BUCKETS,
    InvalidMetricsBind,
    MetricsEndpoint,
    ServerMetrics,
    check_metrics_bind,
)
from sievedb_server.transport.security import SecurityConfig
from sievedb_server.transport.server import create_server

SERVICE = "sievedb.v1.SieveDB"
DIM = 8
N = 300
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of the endpoint, keyed by (sample name, labels)."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lb), v in samples.items() if n == name and want <= lb)


@pytest.fixture
def metered(engine: Engine) -> Iterator[tuple[Client, MetricsEndpoint, Engine]]:
    metrics = ServerMetrics()
    srv, port = create_server("127.0.0.1:0", engine.data_dir, engine=engine, metrics=metrics)
    srv.start()
    endpoint = metrics.serve_http("127.0.0.1", 0)
    with Client(f"127.0.0.1:{port}", timeout=30.0) as client:
        yield client, endpoint, engine
    endpoint.close()
    srv.shutdown(grace=1.0, close_engine=False)


def _fill(client: Client, name: str = "docs") -> np.ndarray:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    client.create_collection(name, DIM, "l2", full_scan_threshold=0, schema={"tag": "keyword"})
    # tag "rare" on every 10th point: 30 allowed.
    attrs = [{"tag": "rare" if i % 10 == 0 else "common"} for i in range(N)]
    client.upsert(name, list(range(N)), vectors, attrs, batch_size=N)
    return vectors


def test_rpc_counters_latency_and_in_flight(
    metered: tuple[Client, MetricsEndpoint, Engine],
) -> None:
    client, endpoint, _ = metered
    vectors = _fill(client)
    for i in range(4):
        client.search("docs", vectors[i], k=5)
    with pytest.raises(CollectionNotFound):
        client.describe_collection("missing")
    with pytest.raises(InvalidArgument):
        client.search("docs", vectors[0], k=0)

    s = scrape(endpoint.url)
    requests = "sievedb_grpc_requests_total"
    assert value(s, requests, service=SERVICE, method="Search", code="OK") == 4
    assert value(s, requests, service=SERVICE, method="Search", code="INVALID_ARGUMENT") == 1
    assert value(s, requests, service=SERVICE, method="DescribeCollection", code="NOT_FOUND") == 1
    assert value(s, requests, service=SERVICE, method="Upsert", code="OK") == 1
    assert value(s, requests, service=SERVICE, method="CreateCollection", code="OK") == 1

    hist = "sievedb_grpc_request_duration_seconds"
    search = {"service": SERVICE, "method": "Search"}
    assert value(s, f"{hist}_count", **search) == 5  # failures are timed too
    assert value(s, f"{hist}_sum", **search) > 0
    buckets = [value(s, f"{hist}_bucket", le=str(b), **search) for b in LATENCY_BUCKETS]
    assert buckets == sorted(buckets)  # cumulative
    assert value(s, f"{hist}_bucket", le="+Inf", **search) == 5
    for method in ("Search", "DescribeCollection", "Upsert", "CreateCollection"):
        assert value(s, "sievedb_grpc_requests_in_flight", service=SERVICE, method=method) == 0


def test_plan_choices_and_allowed_set_sizes(
    metered: tuple[Client, MetricsEndpoint, Engine],
) -> None:
    client, endpoint, _ = metered
    vectors = _fill(client)
    for i in range(3):
        client.search("docs", vectors[i], k=5, filter="tag == 'rare'")  # 30 allowed
    client.search("docs", vectors[0], k=5, filter="tag == 'none'")  # 0 allowed
    client.search("docs", vectors[0], k=5)  # unfiltered
    client.search_batch("docs", vectors[:2], k=5)  # two unfiltered queries, one call

    s = scrape(endpoint.url)
    plans = "sievedb_search_plans_total"
    assert value(s, plans, plan="exact", filtered="true") == 3  # 30 x 8 floats: scan
    assert value(s, plans, plan="empty", filtered="true") == 1
    assert total(s, plans, filtered="false") == 3
    assert total(s, plans) == 7
    allowed = "sievedb_search_allowed_points"
    assert value(s, f"{allowed}_count", plan="exact") == 3
    assert value(s, f"{allowed}_sum", plan="exact") == 90
    assert value(s, f"{allowed}_bucket", plan="exact", le="10.0") == 0
    assert value(s, f"{allowed}_bucket", plan="exact", le="100.0") == 3
    assert value(s, f"{allowed}_count", plan="empty") == 1
    sel = "sievedb_search_filter_selectivity"
    assert value(s, f"{sel}_count") == 4
    assert value(s, f"{sel}_sum") == pytest.approx(3 * 30 / N)


def test_collection_sizes_and_bulk_load_rows(
    metered: tuple[Client, MetricsEndpoint, Engine],
) -> None:
    client, endpoint, engine = metered
    _fill(client)
    client.delete("docs", list(range(10)))
    extra = np.random.default_rng(5).standard_normal((50, DIM)).astype(np.float32)
    client.bulk_load("docs", extra, ids=list(range(1000, 1050)), batch_size=20)
    client.create_collection("empty", DIM)

    s = scrape(endpoint.url)
    stats = {st.name: st for st in engine.stats()}
    assert value(s, "sievedb_collections") == 2
    assert value(s, "sievedb_collection_points", collection="docs") == N - 10 + 50
    assert value(s, "sievedb_collection_points", collection="empty") == 0
    assert value(s, "sievedb_collection_graph_deleted_points", collection="docs") >= 10
    for name in ("docs", "empty"):
        st = stats[name]
        assert value(s, "sievedb_collection_pending_points", collection=name) == st.pending
        assert value(s, "sievedb_collection_indexed_points", collection=name) == pytest.approx(
            st.indexed, abs=50  # the indexer may move pending points between the two reads
        )
        assert value(s, "sievedb_collection_disk_bytes", collection=name) > 0
    assert value(s, "sievedb_bulk_load_rows_total") == 50
    bulk = value(s, "sievedb_grpc_requests_total", service=SERVICE, method="BulkLoad", code="OK")
    assert bulk == 1


def test_auth_failures_are_counted(engine: Engine) -> None:
    keys = {"read-key-5f0c1e9a7b3d2468": "read", "admin-key-0f1e2d3c4b5a6978": "admin"}
    metrics = ServerMetrics()
    security = SecurityConfig(api_keys=KeyStore.from_keys(keys))
    srv, port = create_server(
        "127.0.0.1:0", engine.data_dir, engine=engine, security=security, metrics=metrics
    )
    srv.start()
    endpoint = metrics.serve_http("127.0.0.1", 0)
    try:
        target = f"127.0.0.1:{port}"
        with Client(target, api_key="admin-key-0f1e2d3c4b5a6978") as admin:
            admin.create_collection("docs", DIM)
        with Client(target) as anonymous, pytest.raises(Unauthenticated):
            anonymous.list_collections()
        with Client(target, api_key="read-key-5f0c1e9a7b3d2468") as reader:
            reader.list_collections()
            for _ in range(2):
                with pytest.raises(PermissionDenied):
                    reader.drop_collection("docs")
        s = scrape(endpoint.url)
    finally:
        endpoint.close()
        srv.shutdown(grace=1.0, close_engine=False)
    assert value(s, "sievedb_auth_failures_total", code="UNAUTHENTICATED") == 1
    assert value(s, "sievedb_auth_failures_total", code="PERMISSION_DENIED") == 2
    assert value(
        s, "sievedb_grpc_requests_total", service=SERVICE, method="ListCollections",
        code="UNAUTHENTICATED",
    ) == 1


def test_every_server_has_its_own_registry(tmp_path: Path) -> None:
    """Two servers in one process: separate registries, separate counts (no global state)."""
    engines = [Engine(tmp_path / f"d{i}") for i in range(2)]
    metrics = [ServerMetrics(e) for e in engines]
    try:
        metrics[0].call_started(f"/{SERVICE}/Count")
        metrics[0].call_finished(f"/{SERVICE}/Count", "OK", 0.001)
        counts = [
            m.registry.get_sample_value(
                "sievedb_grpc_requests_total",
                {"service": SERVICE, "method": "Count", "code": "OK"},
            )
            for m in metrics
        ]
        assert counts == [1.0, None]
    finally:
        for m, e in zip(metrics, engines):
            m.detach()
            e.close()


class _FakeContext:
    """Just enough of `grpc.ServicerContext` for the interceptor's bookkeeping."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def code(self) -> None:
        return None

    def time_remaining(self) -> None:
        return None

    def is_active(self) -> bool:
        return True


def test_a_stream_the_client_abandons_is_counted_as_cancelled() -> None:
    metrics = ServerMetrics()
    method = f"/{SERVICE}/BulkLoad"

    def endless(request: Any, context: Any) -> Iterator[int]:
        while True:
            yield 1

    stream = _wrap_stream(endless, method, None, metrics, streaming=True)(
        iter(()), _FakeContext()
    )
    next(stream)
    labels = {"service": SERVICE, "method": "BulkLoad"}
    assert metrics.registry.get_sample_value("sievedb_grpc_requests_in_flight", labels) == 1
    stream.close()  # what grpc does when the client cancels mid-stream
    assert metrics.registry.get_sample_value("sievedb_grpc_requests_in_flight", labels) == 0
    assert metrics.registry.get_sample_value(
        "sievedb_grpc_requests_total", {**labels, "code": "CANCELLED"}
    ) == 1


def test_metrics_endpoint_stays_on_loopback_unless_insecure() -> None:
    assert check_metrics_bind("127.0.0.1", allow_insecure=False) == []
    assert check_metrics_bind("localhost", allow_insecure=False) == []
    with pytest.raises(InvalidMetricsBind, match="plaintext and unauthenticated"):
        check_metrics_bind("0.0.0.0", allow_insecure=False)
    assert "INSECURE" in check_metrics_bind("0.0.0.0", allow_insecure=True)[0]


def test_serve_metrics_port_and_json_logs(tmp_path: Path, spawn_server: SpawnServer) -> None:
    """`sievedb serve --metrics-port P --log-format json`, end to end in a subprocess."""
    metrics_port = free_port()
    proc, port = spawn_server(
        tmp_path / "data", "--metrics-port", str(metrics_port), "--log-format", "json"
    )
    with Client(f"127.0.0.1:{port}") as client:
        client.create_collection("docs", DIM)
        with pytest.raises(CollectionNotFound) as missing:
            client.count("nope")
    s = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    assert value(s, "sievedb_grpc_requests_total", service=SERVICE, method="Count",
                 code="NOT_FOUND") == 1
    assert value(s, "sievedb_collection_points", collection="docs") == 0
    lines = Path(proc.log_path).read_text().splitlines()  # type: ignore[attr-defined]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) == len([ln for ln in lines if ln.strip()])
    access = [r for r in records if r["logger"] == "sievedb.access" and r["status"] == "NOT_FOUND"]
    assert [r["request_id"] for r in access] == [missing.value.request_id]
    assert access[0]["collection"] == "nope" and access[0]["peer"]
    assert any(f"127.0.0.1:{metrics_port}/metrics" in r["message"] for r in records)
