"""Through a real gRPC server: every status reachable by a client mistake, request ids, health,
reflection, and that the server keeps serving after each error."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sievedb import Client
from sievedb import errors as E
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_proto.v1 import sievedb_pb2_grpc as pb_grpc
from sievedb_server.core.engine import Engine
from sievedb_server.transport.server import SieveServer, create_server

DIM = 4


@pytest.fixture
def db(server: tuple[Client, Engine]) -> Client:
    client, _ = server
    client.create_collection("c", DIM, "l2")
    client.upsert("c", [1, 2, 3], np.eye(3, DIM, dtype=np.float32), [{"a": i} for i in range(3)])
    return client


@pytest.fixture
def stub(server_handle: tuple[SieveServer, int]) -> Any:
    _, port = server_handle
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.SieveDBStub(channel)


def _still_serving(client: Client) -> None:
    assert "c" in [i.name for i in client.list_collections()]
    assert client.count("c") == 3


def _check(err: E.SieveDBError, code: grpc.StatusCode, reason: str) -> None:
    assert err.code is code
    assert err.reason == reason
    assert err.request_id and re.fullmatch(r"[0-9a-f]{32}", err.request_id)
    assert err.message


# --- one test per reachable row ----------------------------------------------------------------


def test_unknown_collection_is_not_found(db: Client) -> None:
    with pytest.raises(E.CollectionNotFound) as info:
        db.describe_collection("nope")
    _check(info.value, grpc.StatusCode.NOT_FOUND, "COLLECTION_NOT_FOUND")
    assert isinstance(info.value, E.NotFound)
    with pytest.raises(E.CollectionNotFound):
        db.search("nope", np.ones(DIM), k=1)
    _still_serving(db)


def test_unknown_point_is_not_found(db: Client) -> None:
    with pytest.raises(E.PointNotFound) as info:
        db.get("c", [1, 99])
    _check(info.value, grpc.StatusCode.NOT_FOUND, "POINT_NOT_FOUND")
    assert [p.id for p in db.get("c", [1, 99], allow_missing=True)] == [1]
    _still_serving(db)


def test_create_twice_is_already_exists(db: Client) -> None:
    with pytest.raises(E.AlreadyExists) as info:
        db.create_collection("c", DIM)
    _check(info.value, grpc.StatusCode.ALREADY_EXISTS, "COLLECTION_EXISTS")
    _still_serving(db)


def test_wrong_dimension_is_failed_precondition(db: Client) -> None:
    with pytest.raises(E.DimensionMismatch) as info:
        db.upsert("c", [9], np.ones((1, DIM + 1), np.float32))
    _check(info.value, grpc.StatusCode.FAILED_PRECONDITION, "DIMENSION_MISMATCH")
    with pytest.raises(E.DimensionMismatch):
        db.search("c", np.ones(DIM - 1), k=1)
    _still_serving(db)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_vector_is_invalid_argument(db: Client, bad: float) -> None:
    vec = np.ones((1, DIM), np.float32)
    vec[0, 2] = bad
    with pytest.raises(E.InvalidArgument) as info:
        db.upsert("c", [9], vec)
    _check(info.value, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VECTOR")
    with pytest.raises(E.InvalidVector):
        db.search("c", vec[0], k=1)
    _still_serving(db)


def test_k_zero_is_invalid_argument(db: Client) -> None:
    with pytest.raises(E.InvalidArgument) as info:
        db.search("c", np.ones(DIM), k=0)
    _check(info.value, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert "k" in info.value.message
    _still_serving(db)


@pytest.mark.parametrize("name", ["", "has space", "../etc", "x" * 65, "ü"])
def test_bad_collection_name_is_invalid_argument(db: Client, name: str) -> None:
    with pytest.raises(E.InvalidArgument) as info:
        db.create_collection(name, DIM)
    _check(info.value, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME")
    _still_serving(db)


def test_bad_filter_expression_is_invalid_argument(db: Client) -> None:
    with pytest.raises(E.InvalidArgument) as info:
        db.count("c", "year >= ")
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    _still_serving(db)


def test_unspecified_field_type_is_invalid_argument(db: Client, stub: Any) -> None:
    spec = pb.CollectionSpec(name="d", dim=2, schema=[pb.FieldSchema(name="f")])
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateCollection(pb.CreateCollectionRequest(spec=spec))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    _still_serving(db)


# --- malformed wire data (the codec's own checks) ----------------------------------------------


def _raw_error(call: Any, request: Any) -> E.SieveDBError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return E.from_rpc_error(info.value)


def test_malformed_vector_bytes(db: Client, stub: Any) -> None:
    request = pb.UpsertRequest(
        collection="c",
        ids=[pb.PointId(num=9)],
        vectors=pb.Vectors(data=b"\0" * (4 * DIM - 1), dim=DIM, count=1),
    )
    err = _raw_error(stub.Upsert, request)
    _check(err, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VECTOR")
    _still_serving(db)


def test_id_vector_count_mismatch(db: Client, stub: Any) -> None:
    request = pb.UpsertRequest(
        collection="c",
        ids=[pb.PointId(num=9), pb.PointId(num=10)],
        vectors=pb.Vectors(data=b"\0" * 4 * DIM, dim=DIM, count=1),
    )
    _check(_raw_error(stub.Upsert, request), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    _still_serving(db)


def test_unset_point_id(db: Client, stub: Any) -> None:
    request = pb.GetPointsRequest(collection="c", ids=[pb.PointId()])
    _check(
        _raw_error(stub.GetPoints, request), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    _still_serving(db)


def test_attribute_count_mismatch(db: Client, stub: Any) -> None:
    request = pb.UpsertRequest(
        collection="c",
        ids=[pb.PointId(num=9), pb.PointId(num=10)],
        vectors=pb.Vectors(data=b"\0" * 8 * DIM, dim=DIM, count=2),
        attributes=[pb.Attributes()],
    )
    err = _raw_error(stub.Upsert, request)
    _check(err, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ATTRIBUTES")
    _still_serving(db)


def test_search_batch_filter_count_mismatch(db: Client) -> None:
    with pytest.raises(E.InvalidArgument):
        db.search_batch("c", np.ones((3, DIM)), k=1, filters=[None, None])  # caught locally
    _still_serving(db)


# --- resource limits, internal errors, shutdown ------------------------------------------------


def test_oversize_message_is_resource_exhausted(engine: Engine) -> None:
    srv, port = create_server("127.0.0.1:0", engine.data_dir, engine=engine, max_message_mb=1)
    srv.start()
    try:
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            client.create_collection("big", 256)
            vectors = np.ones((2000, 256), np.float32)  # ~2 MB in one request
            with pytest.raises(E.ResourceExhausted) as info:
                client.upsert("big", list(range(2000)), vectors, batch_size=2000)
            assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert client.upsert("big", list(range(2000)), vectors, batch_size=500).upserted == 2000
            assert client.count("big") == 2000
    finally:
        srv.shutdown(grace=1, close_engine=False)


class _ExplodingEngine:
    def describe_collection(self, name: str) -> Any:
        raise RuntimeError("secret path /var/lib/sievedb/keys")

    def close(self) -> None:
        pass


def test_unexpected_exception_is_internal_without_details(tmp_path: Path) -> None:
    srv, port = create_server("127.0.0.1:0", tmp_path, engine=_ExplodingEngine())  # type: ignore[arg-type]
    srv.start()
    try:
        with Client(f"127.0.0.1:{port}", timeout=10) as client:
            with pytest.raises(E.InternalError) as info:
                client.describe_collection("c")
            err = info.value
            _check(err, grpc.StatusCode.INTERNAL, "INTERNAL")
            assert "secret" not in err.message and "RuntimeError" not in err.message
            assert err.message == f"internal error (request id {err.request_id})"
            with pytest.raises(E.InternalError):  # and it keeps answering
                client.describe_collection("c")
    finally:
        srv.shutdown(grace=1)


def test_unavailable_during_shutdown(server_handle: tuple[SieveServer, int], db: Client) -> None:
    srv, port = server_handle
    srv.begin_shutdown()
    with pytest.raises(E.Unavailable) as info:
        db.count("c")
    _check(info.value, grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "sievedb.v1.SieveDB"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_unreachable_server_is_unavailable() -> None:
    from conftest import free_port

    with (
        Client(f"127.0.0.1:{free_port()}", timeout=2) as client,
        pytest.raises(E.Unavailable) as info,
    ):
        client.list_collections()
    assert info.value.request_id is None


# --- request ids, health, reflection -----------------------------------------------------------


def test_client_supplied_request_id_is_echoed(server_handle: tuple[SieveServer, int]) -> None:
    _, port = server_handle
    client = Client(f"127.0.0.1:{port}", metadata=[("x-request-id", "trace-42")])
    with client, pytest.raises(E.CollectionNotFound) as info:
        client.describe_collection("nope")
    assert info.value.request_id == "trace-42"


def test_successful_calls_carry_a_request_id(stub: Any) -> None:
    _, call = stub.ListCollections.with_call(pb.ListCollectionsRequest(), timeout=5)
    trailers = dict(call.trailing_metadata())
    assert re.fullmatch(r"[0-9a-f]{32}", trailers["sievedb-request-id"])
    assert "sievedb-reason" not in trailers


def test_health_is_serving(server_handle: tuple[SieveServer, int]) -> None:
    _, port = server_handle
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "sievedb.v1.SieveDB"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_service(server_handle: tuple[SieveServer, int]) -> None:
    _, port = server_handle
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in responses[0].list_services_response.service}
    assert {"sievedb.v1.SieveDB", "grpc.health.v1.Health"} <= names


# --- the remaining rows of the validation table (ARCHITECTURE §5) ----------------------------


def test_empty_vector_is_invalid_argument(db: Client, stub: Any) -> None:
    for vectors in (
        pb.Vectors(data=b"", dim=0, count=1),  # no dimension
        pb.Vectors(data=b"", dim=DIM, count=0),  # no vector at all
    ):
        request = pb.UpsertRequest(collection="c", vectors=vectors)
        _check(_raw_error(stub.Upsert, request), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VECTOR")
    search = pb.SearchRequest(
        collection="c", query=pb.Vectors(data=b"", dim=DIM, count=0), params=pb.SearchParams(k=1)
    )
    _check(_raw_error(stub.Search, search), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VECTOR")
    _still_serving(db)


def test_unknown_model_is_not_found(db: Client) -> None:
    db.register_model("c", "v1", DIM)
    with pytest.raises(E.ModelNotFound) as info:
        db.check_model("c", "nope")
    _check(info.value, grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND")
    _still_serving(db)


def test_unknown_model_on_a_query_is_model_mismatch(db: Client) -> None:
    with pytest.raises(E.ModelMismatch) as info:
        db.search("c", np.ones(DIM), k=1, model="other")
    _check(info.value, grpc.StatusCode.FAILED_PRECONDITION, "MODEL_MISMATCH")
    _still_serving(db)


def test_too_many_results_is_resource_exhausted(db: Client) -> None:
    with pytest.raises(E.ResourceExhausted) as info:
        db.search("c", np.ones(DIM), k=10_001)
    _check(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_RESULTS")
    assert "max_k" in info.value.message
    _still_serving(db)


def test_request_too_large_is_resource_exhausted(db: Client) -> None:
    with pytest.raises(E.ResourceExhausted) as info:
        db.count("c", "a in [" + ", ".join(str(i) for i in range(5000)) + "]")
    _check(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "REQUEST_TOO_LARGE")
    assert "max_match_values" in info.value.message
    _still_serving(db)


def test_corrupt_data_on_disk_is_data_loss(server: tuple[Client, Engine], db: Client) -> None:
    _, engine = server
    store = engine.collection("c").store
    with store.env.begin(write=True) as txn:  # damage the stored attributes of point 1
        label = store.label_of(txn, 1)
        txn.put(struct.pack(">Q", label), b"\xffgarbage", db=store.db["attrs"])
    with pytest.raises(E.DataLoss) as info:
        db.get("c", [1])
    _check(info.value, grpc.StatusCode.DATA_LOSS, "CORRUPT_DATA")
    assert db.count("c") == 3  # the rest still answers
