"""Every limit of the limits table at its boundary, through a real gRPC server on port 0.

For each operational limit: the limit itself passes, limit + 1 fails with RESOURCE_EXHAUSTED
and a message naming the limit (its field name) and the value. The server runs with a small
table (`SMALL`) so the boundaries are cheap to reach; format limits (ids, keys, indexed
keywords, names) are fixed and tested against the default server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import msgpack
import numpy as np
import pytest
from sievedb import Client
from sievedb import errors as E
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_proto.v1 import sievedb_pb2_grpc as pb_grpc
from sievedb_server.core.engine import Engine
from sievedb_server.limits import (
    DEFAULT_LIMITS,
    INDEXED_KEYWORD_MAX_BYTES,
    KEY_MAX_BYTES,
    KEY_MAX_CHARS,
    STR_ID_MAX_BYTES,
    Limits,
)
from sievedb_server.transport.server import SieveServer, create_server

DIM = 4
SMALL = Limits(
    max_batch_points=8,
    max_batch_queries=4,
    max_k=5,
    max_ef=64,
    max_scroll_limit=6,
    max_dim=32,
    max_collections=3,
    max_filter_depth=3,
    max_filter_nodes=12,
    max_filter_expr_chars=60,
    max_match_values=4,
    max_attribute_bytes=100,
    max_attribute_keys=4,
    max_string_bytes=40,
    max_list_values=3,
)


@pytest.fixture
def small(engine: Engine) -> Iterator[tuple[Client, Any]]:
    """(client, raw stub) of a server with the SMALL table and collection "c" (10 points)."""
    srv, port = create_server("127.0.0.1:0", engine.data_dir, engine=engine, limits=SMALL)
    srv.start()
    try:
        with Client(f"127.0.0.1:{port}", timeout=30) as client, grpc.insecure_channel(
            f"127.0.0.1:{port}"
        ) as channel:
            client.create_collection("c", DIM, "l2")
            for start in (0, 5):
                ids = list(range(start, start + 5))
                client.upsert("c", ids, np.eye(5, DIM, dtype=np.float32) + start)
            yield client, pb_grpc.SieveDBStub(channel)
    finally:
        srv.shutdown(grace=1, close_engine=False)


def _exhausted(info: pytest.ExceptionInfo[E.SieveDBError], limit: str, value: int) -> None:
    err = info.value
    assert err.code is grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert isinstance(err, E.ResourceExhausted)
    assert f"({limit})" in err.message, err.message
    assert f"is {value};" in err.message, err.message
    assert f"the limit is {getattr(SMALL, limit)}" in err.message, err.message


def _vectors(n: int) -> np.ndarray:
    return np.arange(1, n * DIM + 1, dtype=np.float32).reshape(n, DIM)


# --- requests ------------------------------------------------------------------------------


def test_points_per_upsert(small: tuple[Client, Any]) -> None:
    client, _ = small
    assert client.upsert("c", list(range(100, 108)), _vectors(8), batch_size=8).upserted == 8
    with pytest.raises(E.ResourceExhausted) as info:
        client.upsert("c", list(range(200, 209)), _vectors(9), batch_size=9)
    _exhausted(info, "max_batch_points", 9)
    assert info.value.reason == "REQUEST_TOO_LARGE"
    assert client.count("c") == 18  # the refused batch wrote nothing


def test_points_per_bulk_load_chunk(small: tuple[Client, Any]) -> None:
    client, _ = small
    assert client.bulk_load("c", _vectors(8), list(range(300, 308)), batch_size=8).upserted == 8
    with pytest.raises(E.ResourceExhausted) as info:
        client.bulk_load("c", _vectors(9), list(range(400, 409)), batch_size=9)
    _exhausted(info, "max_batch_points", 9)


def test_queries_per_batch(small: tuple[Client, Any]) -> None:
    client, _ = small
    assert len(client.search_batch("c", _vectors(4), k=1)) == 4
    with pytest.raises(E.ResourceExhausted) as info:
        client.search_batch("c", _vectors(5), k=1)
    _exhausted(info, "max_batch_queries", 5)


def test_k(small: tuple[Client, Any]) -> None:
    client, _ = small
    assert len(client.search("c", np.ones(DIM), k=5).hits) == 5
    with pytest.raises(E.ResourceExhausted) as info:
        client.search("c", np.ones(DIM), k=6)
    _exhausted(info, "max_k", 6)
    assert info.value.reason == "TOO_MANY_RESULTS"


def test_ef(small: tuple[Client, Any]) -> None:
    client, _ = small
    assert len(client.search("c", np.ones(DIM), k=1, ef=64).hits) == 1
    with pytest.raises(E.ResourceExhausted) as info:
        client.search("c", np.ones(DIM), k=1, ef=65)
    _exhausted(info, "max_ef", 65)


def test_scroll_limit(small: tuple[Client, Any]) -> None:
    client, _ = small
    assert len(client.scroll("c", limit=6).points) == 6
    with pytest.raises(E.ResourceExhausted) as info:
        client.scroll("c", limit=7)
    _exhausted(info, "max_scroll_limit", 7)
    assert info.value.reason == "TOO_MANY_RESULTS"


def test_dim(small: tuple[Client, Any]) -> None:
    client, _ = small
    assert client.create_collection("d32", 32).dim == 32
    with pytest.raises(E.ResourceExhausted) as info:
        client.create_collection("d33", 33)
    _exhausted(info, "max_dim", 33)
    with pytest.raises(E.InvalidArgument):  # dim 0 is malformed, not too large
        client.create_collection("d0", 0)


def test_number_of_collections(small: tuple[Client, Any]) -> None:
    client, _ = small
    client.create_collection("two", DIM)
    client.create_collection("three", DIM)
    with pytest.raises(E.ResourceExhausted) as info:
        client.create_collection("four", DIM)
    _exhausted(info, "max_collections", 4)
    client.drop_collection("two")
    client.create_collection("four", DIM)  # a drop frees a slot


# --- filters -------------------------------------------------------------------------------


def test_filter_depth_text(small: tuple[Client, Any]) -> None:
    client, _ = small
    assert client.count("c", "(((a == 1)))") == 0
    with pytest.raises(E.ResourceExhausted) as info:
        client.count("c", "((((a == 1))))")
    assert "max_filter_depth" in info.value.message
    assert "column 4" in info.value.message  # the parser says where


def _nested(depth: int) -> pb.Filter:
    msg = pb.Filter(must=[pb.Condition(is_null=pb.IsNullCondition(key="a"))])
    for _ in range(depth - 1):
        msg = pb.Filter(must=[pb.Condition(filter=msg)])
    return msg


def test_filter_depth_structured(small: tuple[Client, Any]) -> None:
    client, _ = small
    assert client.count("c", _nested(3)) == 0
    with pytest.raises(E.ResourceExhausted) as info:
        client.count("c", _nested(4))
    _exhausted(info, "max_filter_depth", 4)


def _conditions(n: int) -> pb.Filter:
    return pb.Filter(
        must=[pb.Condition(is_null=pb.IsNullCondition(key=f"k{i}")) for i in range(n)]
    )


def test_filter_nodes(small: tuple[Client, Any]) -> None:
    client, _ = small
    assert client.count("c", _conditions(11)) == 0  # 11 conditions + the filter = 12 nodes
    with pytest.raises(E.ResourceExhausted) as info:
        client.count("c", _conditions(12))
    _exhausted(info, "max_filter_nodes", 13)


def test_filter_expression_length(small: tuple[Client, Any]) -> None:
    client, _ = small
    text = "a == 1" + " " * 54
    assert len(text) == 60 and client.count("c", text) == 0
    with pytest.raises(E.ResourceExhausted) as info:
        client.count("c", text + " ")
    _exhausted(info, "max_filter_expr_chars", 61)


@pytest.mark.parametrize(
    "template",
    ["a in [{}]", "a not in [{}]", "id in [{}]"],
)
def test_values_in_one_list_text(small: tuple[Client, Any], template: str) -> None:
    client, _ = small
    client.count("c", template.format(", ".join(str(i) for i in range(4))))
    with pytest.raises(E.ResourceExhausted) as info:
        client.count("c", template.format(", ".join(str(i) for i in range(5))))
    _exhausted(info, "max_match_values", 5)


def test_values_in_one_list_structured(small: tuple[Client, Any]) -> None:
    client, _ = small

    def has_id(n: int) -> pb.Filter:
        ids = [pb.PointId(num=i) for i in range(n)]
        return pb.Filter(must=[pb.Condition(has_id=pb.HasIdCondition(ids=ids))])

    def match_any(n: int) -> pb.Filter:
        values = [pb.AttrValue(int_value=i) for i in range(n)]
        field = pb.FieldCondition(key="a", match=pb.Match(any=pb.ListValue(values=values)))
        return pb.Filter(must=[pb.Condition(field=field)])

    for build in (has_id, match_any):
        assert client.count("c", build(4)) == (4 if build is has_id else 0)
        with pytest.raises(E.ResourceExhausted) as info:
            client.count("c", build(5))
        assert "max_match_values" in info.value.message and "is 5;" in info.value.message


# --- attributes ----------------------------------------------------------------------------


def _upsert_attrs(client: Client, attrs: dict[str, Any]) -> None:
    client.upsert("c", [500], _vectors(1), [attrs])


def test_attribute_keys_per_point(small: tuple[Client, Any]) -> None:
    client, _ = small
    _upsert_attrs(client, {f"k{i}": i for i in range(4)})
    with pytest.raises(E.ResourceExhausted) as info:
        _upsert_attrs(client, {f"k{i}": i for i in range(5)})
    _exhausted(info, "max_attribute_keys", 5)
    assert "point 500" in info.value.message  # names the point


def test_string_value_bytes(small: tuple[Client, Any]) -> None:
    client, _ = small
    _upsert_attrs(client, {"s": "é" * 20})  # 40 UTF-8 bytes
    with pytest.raises(E.ResourceExhausted) as info:
        _upsert_attrs(client, {"s": "é" * 20 + "x"})
    _exhausted(info, "max_string_bytes", 41)


def test_list_length(small: tuple[Client, Any]) -> None:
    client, _ = small
    _upsert_attrs(client, {"tags": ["a", "b", "c"]})
    with pytest.raises(E.ResourceExhausted) as info:
        _upsert_attrs(client, {"tags": ["a", "b", "c", "d"]})
    _exhausted(info, "max_list_values", 4)


def test_encoded_attribute_bytes(small: tuple[Client, Any]) -> None:
    client, _ = small

    def attrs(n: int) -> dict[str, Any]:
        return {"a": "x" * 40, "b": "y" * 40, "c": "z" * n}

    n = next(n for n in range(40) if len(msgpack.packb(attrs(n))) == 100)
    _upsert_attrs(client, attrs(n))
    with pytest.raises(E.ResourceExhausted) as info:
        _upsert_attrs(client, attrs(n + 1))
    _exhausted(info, "max_attribute_bytes", 101)


# --- format limits (fixed; default server) -------------------------------------------------


@pytest.fixture
def db(server: tuple[Client, Engine]) -> Client:
    client, _ = server
    client.create_collection("c", DIM, "l2", schema={"kw": "keyword", "tags": "keyword_list"})
    return client


def test_string_point_id_bytes(db: Client) -> None:
    longest = "€" * (STR_ID_MAX_BYTES // 3)  # 510 bytes
    assert len(longest.encode()) == STR_ID_MAX_BYTES
    db.upsert("c", [longest], _vectors(1))
    assert [p.id for p in db.get("c", [longest])] == [longest]
    for too_long in ("x" * (STR_ID_MAX_BYTES + 1), "x" * 512, longest + "x"):
        for call in (
            lambda pid: db.upsert("c", [pid], _vectors(1)),
            lambda pid: db.get("c", [pid], allow_missing=True),
            lambda pid: db.delete("c", [pid]),
            lambda pid: db.count("c", f'id == "{pid}"'),
        ):
            with pytest.raises(E.InvalidArgument) as info:  # malformed, and never INTERNAL
                call(too_long)
            assert str(STR_ID_MAX_BYTES) in info.value.message
    assert db.count("c") == 1


def test_attribute_key_length(db: Client) -> None:
    db.upsert("c", [1], _vectors(1), [{"k" * KEY_MAX_CHARS: 1}])
    db.upsert("c", [1], _vectors(1), [{"€" * 85 + "a": 1}])  # 256 UTF-8 bytes
    assert len(("€" * 85 + "a").encode()) == KEY_MAX_BYTES
    for key in ("k" * (KEY_MAX_CHARS + 1), "€" * 85 + "ab"):
        with pytest.raises(E.InvalidArgument) as info:
            db.upsert("c", [1], _vectors(1), [{key: 1}])
        assert info.value.reason == "INVALID_ATTRIBUTES"
        with pytest.raises(E.InvalidArgument):
            db.count("c", pb.Filter(must=[pb.Condition(is_null=pb.IsNullCondition(key=key))]))


@pytest.mark.parametrize("field", ["kw", "tags"])
def test_indexed_keyword_bytes(db: Client, field: str) -> None:
    fits = "k" * INDEXED_KEYWORD_MAX_BYTES
    value: Any = fits if field == "kw" else [fits, "short"]
    db.upsert("c", [1], _vectors(1), [{field: value}])
    assert db.count("c", f'{field} == "{fits}"' if field == "kw" else f'"{fits}" in tags') == 1
    too_long = fits + "k"
    with pytest.raises(E.ResourceExhausted) as info:
        db.upsert("c", [2], _vectors(1), [{field: too_long if field == "kw" else [too_long]}])
    assert str(INDEXED_KEYWORD_MAX_BYTES) in info.value.message
    # Longer strings are fine in fields that are not indexed.
    db.upsert("c", [3], _vectors(1), [{"free": "x" * 5000}])
    assert db.count("c") == 2


def test_indexing_a_field_with_long_values_is_refused(db: Client) -> None:
    db.upsert("c", [1], _vectors(1), [{"later": "v" * 300}])
    with pytest.raises(E.ResourceExhausted):
        db.update_schema("c", {"later": "keyword"})
    assert db.count("c", 'later == "x"') == 0  # still usable, and the field undeclared


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "a\\b", "..", ".", "c\x00", "tab\tname", "nl\n", "é", "x" * 65]
)
def test_path_like_or_control_names_are_refused(db: Client, name: str) -> None:
    with pytest.raises(E.InvalidArgument) as info:
        db.create_collection(name, DIM)
    assert info.value.reason == "INVALID_NAME"
    with pytest.raises(E.InvalidArgument):
        db.set_alias(name, "c")
    with pytest.raises(E.InvalidArgument):
        db.count(name)


@pytest.mark.parametrize(
    "model", ["../m", "a/b", "a\\b", ".hidden", "m\x00", "m\n", "m\x7f", "", "x" * 129]
)
def test_path_like_or_control_model_ids_are_refused(db: Client, model: str) -> None:
    with pytest.raises(E.InvalidArgument) as info:
        db.register_model("c", model, DIM)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("key", ["a/b", "../x", "a\\b", "c\x00", "c\x1f", "d\x7f", "e\x85"])
def test_path_like_or_control_attribute_keys_are_refused(db: Client, key: str) -> None:
    with pytest.raises(E.InvalidArgument) as info:
        db.upsert("c", [1], _vectors(1), [{key: 1}])
    assert info.value.reason == "INVALID_ATTRIBUTES"
    with pytest.raises(E.InvalidFilter):
        db.count("c", pb.Filter(must=[pb.Condition(is_empty=pb.IsEmptyCondition(key=key))]))


# --- transport: message size, concurrent calls, idle streams -------------------------------


def _upsert_bytes(size: int) -> bytes:
    """A serialized UpsertRequest of exactly `size` bytes (for a collection that is absent)."""
    for pad in range(size, size - 64, -1):
        data = pb.UpsertRequest(
            collection="absent", vectors=pb.Vectors(dim=1), model="m" * pad
        ).SerializeToString()
        if len(data) == size:
            return data
    raise AssertionError(size)


def test_message_size(engine: Engine) -> None:
    limit = 64 * 1024
    srv, port = create_server(
        "127.0.0.1:0", engine.data_dir, engine=engine,
        limits=Limits(max_message_bytes=limit),
    )
    srv.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/sievedb.v1.SieveDB/Upsert")
            with pytest.raises(grpc.RpcError) as info:
                call(_upsert_bytes(limit), timeout=10)
            assert info.value.code() is grpc.StatusCode.NOT_FOUND  # decoded: it got through
            with pytest.raises(grpc.RpcError) as info:
                call(_upsert_bytes(limit + 1), timeout=10)
            assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert str(limit) in (info.value.details() or "")
    finally:
        srv.shutdown(grace=1, close_engine=False)


class _StalledStream:
    """A BulkLoad call whose client never sends: holds one call slot until released."""

    def __init__(self, stub: Any, first: pb.BulkLoadRequest | None = None) -> None:
        self.release = threading.Event()
        self.first = first
        self.call = stub.BulkLoad(self._requests(), timeout=30)

    def _requests(self) -> Iterator[pb.BulkLoadRequest]:
        if self.first is not None:
            yield self.first
        self.release.wait(30)

    def close(self) -> None:
        self.release.set()
        self.call.cancel()


@pytest.fixture
def limited(engine: Engine) -> Iterator[tuple[SieveServer, int]]:
    srv, port = create_server(
        "127.0.0.1:0", engine.data_dir, engine=engine, max_workers=4,
        limits=Limits(max_concurrent_rpcs=2, stream_idle_timeout_s=0.5),
    )
    srv.start()
    yield srv, port
    srv.shutdown(grace=1, close_engine=False)


def _wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_concurrent_calls(engine: Engine) -> None:
    srv, port = create_server(
        "127.0.0.1:0", engine.data_dir, engine=engine, max_workers=4,
        limits=Limits(max_concurrent_rpcs=2, stream_idle_timeout_s=30),
    )
    srv.start()
    streams: list[_StalledStream] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.SieveDBStub(channel)
            streams.append(_StalledStream(stub))
            # One call in progress + this one = 2: at the limit, answered.
            _wait_until(lambda: _list_ok(stub))
            streams.append(_StalledStream(stub))
            _wait_until(lambda: _list_code(stub) is grpc.StatusCode.RESOURCE_EXHAUSTED)
            with pytest.raises(grpc.RpcError) as info:
                stub.ListCollections(pb.ListCollectionsRequest(), timeout=5)
            assert "Concurrent RPC limit exceeded" in (info.value.details() or "")
            streams.pop().close()
            _wait_until(lambda: _list_ok(stub))
    finally:
        for stream in streams:
            stream.close()
        srv.shutdown(grace=1, close_engine=False)


def _list_code(stub: Any) -> grpc.StatusCode:
    try:
        stub.ListCollections(pb.ListCollectionsRequest(), timeout=5)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _list_ok(stub: Any) -> bool:
    return _list_code(stub) is grpc.StatusCode.OK


def test_stalled_bulk_load_stream_times_out(limited: tuple[SieveServer, int]) -> None:
    _, port = limited
    with Client(f"127.0.0.1:{port}", timeout=10) as client, grpc.insecure_channel(
        f"127.0.0.1:{port}"
    ) as channel:
        client.create_collection("c", DIM, "l2")
        stub = pb_grpc.SieveDBStub(channel)
        chunk = pb.BulkLoadRequest(
            collection="c",
            ids=[pb.PointId(num=i) for i in range(3)],
            vectors=pb.Vectors(data=_vectors(3).tobytes(), dim=DIM, count=3),
        )
        stalled = _StalledStream(stub, first=chunk)
        try:
            replies = iter(stalled.call)
            assert next(replies).upserted == 3  # the first chunk is committed and acknowledged
            with pytest.raises(grpc.RpcError) as info:
                next(replies)
            err = E.from_rpc_error(info.value)
            assert err.code is grpc.StatusCode.DEADLINE_EXCEEDED
            assert err.reason == "STREAM_IDLE"
            assert "stream_idle_timeout_s" in err.message
        finally:
            stalled.close()
        # The slot and the thread are free again: max_concurrent_rpcs=2 would refuse otherwise.
        other = _StalledStream(stub)
        try:
            assert client.count("c") == 3
            assert len(client.list_collections()) == 1
        finally:
            other.close()


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_k"):
        Limits(max_k=0)
    with pytest.raises(ValueError, match="stream_idle_timeout_s"):
        Limits(stream_idle_timeout_s=-1)
    assert DEFAULT_LIMITS.check("max_k", 10) == 10


def test_serve_flags_reach_the_server(spawn_server: Any, tmp_path: Any) -> None:
    _, port = spawn_server(tmp_path / "data", "--max-k", "3", "--max-batch-queries", "2")
    with Client(f"127.0.0.1:{port}", timeout=10) as client:
        client.create_collection("c", DIM)
        client.upsert("c", list(range(5)), _vectors(5))
        assert len(client.search("c", np.ones(DIM), k=3).hits) == 3
        with pytest.raises(E.ResourceExhausted, match=r"is 4; the limit is 3 \(max_k\)"):
            client.search("c", np.ones(DIM), k=4)
        with pytest.raises(E.ResourceExhausted, match="max_batch_queries"):
            client.search_batch("c", _vectors(3), k=1)


@pytest.mark.parametrize("name", ["a/b", "x\x00", "k" * 129, "é" * 129])
def test_schema_field_names_follow_the_key_rules(db: Client, name: str) -> None:
    with pytest.raises(E.InvalidArgument):
        db.create_collection("s", DIM, schema={name: "keyword"})
    with pytest.raises(E.InvalidArgument):
        db.update_schema("c", {name: "keyword"})
