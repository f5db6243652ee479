"""Fuzzing every RPC of `sievedb.v1.SieveDB` through a real gRPC server on port 0.

Each method gets random messages built from its request descriptor (hostile scalars, wrong
dimensions, NaN, thousands of repeated entries, unknown enum values), "plausible" ones aimed
at an existing collection so they get past the first check, raw random bytes, and mutated
serializations of generated requests. The contract: the status is never INTERNAL or UNKNOWN
(a client's mistake is never the server's error), and afterwards the server still answers
health checks and a known-good search exactly.

CI runs a few examples per method (`fuzzing.fuzz_settings`); `benchmarks/fuzz_campaign.py`
runs tens of thousands.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from fuzzing import COLLECTION, DIM, fuzz_settings, messages, plausible
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given
from hypothesis import strategies as st
from sievedb import Client
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_server.core.engine import Engine
from sievedb_server.limits import Limits
from sievedb_server.transport.server import create_server

SERVICE = pb.DESCRIPTOR.services_by_name["SieveDB"]
METHODS = list(SERVICE.methods)
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
STATUS_FILE = os.environ.get("SIEVEDB_FUZZ_STATUS_FILE", "")
KEEP = "control_q7x"  # the control collection: not a name the fuzzer draws
# A smaller table than the default, so a random CreateCollection cannot ask for a 64k-dim
# index and a random message stays cheap; every limit still applies.
FUZZ_LIMITS = Limits(max_dim=64, max_collections=64, max_message_bytes=8 * 1024 * 1024)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[grpc.Channel, int]]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    engine = Engine(data, limits=FUZZ_LIMITS)
    srv, port = create_server("127.0.0.1:0", data, engine=engine, max_workers=4)
    srv.start()
    with Client(f"127.0.0.1:{port}", timeout=30) as client:
        schema = {"g": "keyword", "n": "integer", "tags": "keyword_list", "d": "datetime"}
        for name in (COLLECTION, KEEP):
            client.create_collection(name, DIM, "l2", schema=schema)
        rng = np.random.default_rng(11)
        attrs = [
            {"g": "xy"[i % 2], "n": i % 5, "tags": ["rag", "llm"][: i % 3],
             "d": datetime(2020, 1, 1 + i % 28, tzinfo=UTC)}
            for i in range(40)
        ]
        vectors = rng.normal(size=(40, DIM))
        for name in (COLLECTION, KEEP):
            client.upsert(name, list(range(40)), vectors, attrs)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, port
    finally:
        channel.close()
        srv.shutdown(grace=1)


def _call(channel: grpc.Channel, method: Any, payload: Any, raw: bool = False) -> grpc.StatusCode:
    code = _call_once(channel, method, payload, raw)
    if STATUS_FILE:  # the campaign tallies how far the fuzzer got, per RPC
        with open(STATUS_FILE, "a") as out:
            out.write(f"{method.name} {code.name}\n")
    return code


def _call_once(channel: grpc.Channel, method: Any, payload: Any, raw: bool) -> grpc.StatusCode:
    path = f"/{SERVICE.full_name}/{method.name}"
    serialize = None if raw else (lambda m: m.SerializeToString())
    try:
        if method.client_streaming:
            call = channel.stream_stream(path, request_serializer=serialize)
            for _ in call(iter(payload), timeout=60):
                pass
        else:
            channel.unary_unary(path, request_serializer=serialize)(payload, timeout=60)
    except grpc.RpcError as exc:
        code = exc.code()
        assert code not in FORBIDDEN, f"{method.name} answered {code}: {exc.details()}"
        assert code is not grpc.StatusCode.DEADLINE_EXCEEDED, f"{method.name} hung"
        return code  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


@st.composite
def requests(draw: st.DrawFn, method: Any) -> Any:
    msg = draw(messages(method.input_type))
    if draw(st.integers(0, 2)) > 0:
        msg = plausible(draw, msg)
    return msg


@st.composite
def payloads(draw: st.DrawFn, method: Any) -> Any:
    if not method.client_streaming:
        return draw(requests(method))
    return [draw(requests(method)) for _ in range(draw(st.integers(0, 3)))]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@fuzz_settings(8)
@given(data=st.data())
def test_random_messages(target: tuple[grpc.Channel, int], method: Any, data: st.DataObject) -> None:
    channel, _ = target
    _call(channel, method, data.draw(payloads(method)))


@st.composite
def mutations(draw: st.DrawFn, blob: bytes) -> bytes:
    out = bytearray(blob)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, len(out)))
        if op == "flip" and out:
            out[min(i, len(out) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del out[i : i + draw(st.integers(1, 4))]
        else:
            del out[i:]
    return bytes(out)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@fuzz_settings(5)
@given(data=st.data())
def test_random_and_mutated_bytes(
    target: tuple[grpc.Channel, int], method: Any, data: st.DataObject
) -> None:
    channel, _ = target
    if data.draw(st.booleans()):
        blob = data.draw(st.binary(max_size=256))
    else:
        msg = data.draw(requests(method))
        blob = data.draw(mutations(msg.SerializeToString()))
    payload = [blob] if method.client_streaming else blob
    _call(channel, method, payload, raw=True)


def test_server_still_serves(target: tuple[grpc.Channel, int], tmp_path: Path) -> None:
    """Runs after the fuzz tests of this module: health, and a known-good search, exactly."""
    channel, port = target
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with Client(f"127.0.0.1:{port}", timeout=30) as client:
        vectors = np.random.default_rng(11).normal(size=(40, DIM)).astype(np.float32)
        hits = client.search(KEEP, vectors[7], k=1, exact=True).hits
        assert [h.id for h in hits] == [7]
        assert client.count(KEEP, 'g == "y"') == 20
