"""Unit tests of the transport codec: ids, vectors, attributes, specs, results, malformed input."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_server.core.types import (
    CollectionInfo,
    CollectionSpec,
    FieldSpec,
    FieldType,
    Hit,
    HnswParams,
    Metric,
    Plan,
    PlanStage,
    Point,
    ScrollPage,
    SearchResult,
)
from sievedb_server.errors import InvalidArgument, InvalidAttributes, InvalidVector
from sievedb_server.transport import codec

# --- ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pid", [0, 1, 2**63, 2**64 - 1, "a", "ünïcode-id", "x" * 512])
def test_id_round_trip(pid: int | str) -> None:
    decoded = codec.decode_id(codec.encode_id(pid))
    assert decoded == pid
    assert type(decoded) is type(pid)


def test_numpy_integer_ids_encode_as_numbers() -> None:
    assert codec.encode_id(np.uint64(7)).num == 7
    assert codec.encode_id(np.int32(3)).WhichOneof("kind") == "num"


@pytest.mark.parametrize("bad", [True, 1.5, None, b"bytes"])
def test_encode_id_rejects_other_types(bad: object) -> None:
    with pytest.raises(TypeError):
        codec.encode_id(bad)  # type: ignore[arg-type]


def test_unset_id_oneof_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="neither"):
        codec.decode_id(pb.PointId())
    with pytest.raises(InvalidArgument):
        codec.decode_ids([pb.PointId(num=1), pb.PointId()])


def test_empty_string_id_is_a_set_oneof() -> None:
    # Presence is tracked for oneofs: "" is a (bad) string id, which the engine rejects.
    assert codec.decode_id(pb.PointId(str="")) == ""


# --- vectors ---------------------------------------------------------------------------------


def test_vectors_round_trip_zero_copy() -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5, 7)).astype(np.float32)
    msg = codec.encode_vectors(data)
    assert (msg.dim, msg.count, len(msg.data)) == (7, 5, 5 * 7 * 4)
    out = codec.decode_vectors(msg)
    assert out.shape == (5, 7)
    assert out.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(out, data)
    assert not out.flags.writeable  # a view of the request bytes, not a copy
    assert not out.flags.owndata


def test_vectors_are_little_endian_on_the_wire() -> None:
    msg = codec.encode_vectors(np.array([[1.0]], dtype=">f4"))
    assert msg.data == np.array([1.0], dtype="<f4").tobytes()


def test_encode_vectors_accepts_1d_and_float64() -> None:
    msg = codec.encode_vectors(np.arange(3, dtype=np.float64))
    assert (msg.dim, msg.count) == (3, 1)


@pytest.mark.parametrize(
    ("data_len", "dim", "count"),
    [(4 * 7, 8, 1), (4 * 8 + 1, 8, 1), (4 * 8, 8, 2), (4 * 16, 8, 1), (3, 1, 1)],
)
def test_malformed_vector_bytes_are_invalid_vector(data_len: int, dim: int, count: int) -> None:
    msg = pb.Vectors(data=b"\0" * data_len, dim=dim, count=count)
    with pytest.raises(InvalidVector, match="bytes"):
        codec.decode_vectors(msg)


def test_zero_dim_is_invalid_vector() -> None:
    with pytest.raises(InvalidVector, match="dim"):
        codec.decode_vectors(pb.Vectors(data=b"", dim=0, count=0))


def test_empty_batch_decodes_to_an_empty_matrix_for_the_engine_to_judge() -> None:
    assert codec.decode_vectors(pb.Vectors(data=b"", dim=4, count=0)).shape == (0, 4)


def test_query_must_hold_exactly_one_vector() -> None:
    one = codec.encode_vectors(np.ones((1, 3), np.float32))
    assert codec.decode_query(one).shape == (3,)
    with pytest.raises(InvalidVector, match="count must be 1"):
        codec.decode_query(codec.encode_vectors(np.ones((2, 3), np.float32)))
    with pytest.raises(InvalidVector):
        codec.decode_query(pb.Vectors())


# --- attributes ------------------------------------------------------------------------------

ATTRIBUTES = {
    "keyword": "cs.LG",
    "int": -42,
    "big": 2**62,
    "float": 0.25,
    "bool": True,
    "null": None,
    "when": datetime(2024, 5, 17, 12, 30, 1, 250, tzinfo=UTC),
    "tags": ["a", "b"],
}


def test_attributes_round_trip() -> None:
    out = codec.decode_attributes(codec.encode_attributes(ATTRIBUTES))
    assert out.keys() == ATTRIBUTES.keys()
    for key, value in ATTRIBUTES.items():
        assert out[key] == value, key
        assert type(out[key]) is type(value), key


def test_attributes_list_empty_means_none() -> None:
    assert codec.decode_attributes_list([], 3) is None


def test_attributes_list_length_must_match_ids() -> None:
    msgs = [codec.encode_attributes({"a": 1})] * 2
    assert len(codec.decode_attributes_list(msgs, 2) or []) == 2
    with pytest.raises(InvalidAttributes, match="2 attribute maps for 3 ids"):
        codec.decode_attributes_list(msgs, 3)


# --- upsert requests -------------------------------------------------------------------------


def _upsert(n_ids: int, n_vecs: int, n_attrs: int = 0) -> pb.UpsertRequest:
    return pb.UpsertRequest(
        collection="c",
        ids=[pb.PointId(num=i) for i in range(n_ids)],
        vectors=codec.encode_vectors(np.ones((n_vecs, 4), np.float32)),
        attributes=[codec.encode_attributes({"i": i}) for i in range(n_attrs)],
    )


def test_decode_upsert() -> None:
    ids, vectors, attrs = codec.decode_upsert(_upsert(3, 3, 3))
    assert ids == [0, 1, 2]
    assert vectors.shape == (3, 4)
    assert attrs == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert codec.decode_upsert(_upsert(2, 2))[2] is None


def test_upsert_id_vector_count_mismatch() -> None:
    with pytest.raises(InvalidArgument, match="3 ids but 2 vectors"):
        codec.decode_upsert(_upsert(3, 2))


def test_upsert_attribute_count_mismatch() -> None:
    with pytest.raises(InvalidAttributes):
        codec.decode_upsert(_upsert(3, 3, 1))


def test_upsert_without_vectors() -> None:
    with pytest.raises(InvalidVector, match="not set"):
        codec.decode_upsert(pb.UpsertRequest(collection="c", ids=[pb.PointId(num=1)]))


# --- collections -----------------------------------------------------------------------------

SPEC = CollectionSpec(
    name="papers",
    dim=384,
    metric=Metric.L2,
    hnsw=HnswParams(m=24, ef_construction=300, ef_search=80, full_scan_threshold=1000),
    schema=(
        FieldSpec("category", FieldType.KEYWORD),
        FieldSpec("year", FieldType.INTEGER, indexed=False),
        FieldSpec("tags", FieldType.KEYWORD_LIST),
        FieldSpec("score", FieldType.FLOAT),
        FieldSpec("ok", FieldType.BOOLEAN),
        FieldSpec("at", FieldType.DATETIME),
    ),
)


def test_spec_round_trip() -> None:
    assert codec.decode_spec(codec.encode_spec(SPEC)) == SPEC


def test_spec_zeros_mean_server_defaults() -> None:
    spec = codec.decode_spec(pb.CollectionSpec(name="c", dim=8))
    assert spec.metric is Metric.COSINE
    assert spec.hnsw == HnswParams()
    assert spec.schema == ()


@pytest.mark.parametrize("metric", list(Metric))
def test_metric_round_trip(metric: Metric) -> None:
    spec = CollectionSpec("c", 2, metric)
    assert codec.decode_spec(codec.encode_spec(spec)).metric is metric


def test_unknown_metric_and_field_type_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="metric"):
        codec.decode_spec(pb.CollectionSpec(name="c", dim=2, metric=99))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="field type"):
        codec.decode_field(pb.FieldSchema(name="f"))
    with pytest.raises(InvalidArgument, match="field type"):
        codec.decode_field(pb.FieldSchema(name="f", type=42))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="name"):
        codec.decode_field(pb.FieldSchema(name="", type=pb.KEYWORD))


def test_encode_info() -> None:
    info = CollectionInfo(
        SPEC, point_count=10, indexed_count=9, watermark=7, index_watermark=6, disk_bytes=4096
    )
    msg = codec.encode_info(info)
    assert codec.decode_spec(msg.spec) == SPEC
    assert (
        msg.point_count,
        msg.indexed_count,
        msg.watermark,
        msg.index_watermark,
        msg.disk_bytes,
    ) == (10, 9, 7, 6, 4096)


# --- points, hits, plans ---------------------------------------------------------------------


def test_encode_point_with_and_without_payloads() -> None:
    vec = np.array([1.0, 2.0], np.float32)
    msg = codec.encode_point(Point("p", vec, {"a": 1}))
    assert msg.id.str == "p"
    np.testing.assert_array_equal(np.frombuffer(msg.vector, "<f4"), vec)
    assert codec.decode_attributes(msg.attributes) == {"a": 1}
    bare = codec.encode_point(Point(5))
    assert bare.vector == b"" and not bare.HasField("attributes")


def test_encode_scroll_page() -> None:
    msg = codec.encode_scroll_page(ScrollPage([Point(1), Point(2)], next_cursor=b"\x01"))
    assert [p.id.num for p in msg.points] == [1, 2]
    assert msg.next_cursor == b"\x01"


def test_encode_search_result_with_plan() -> None:
    plan = Plan("exact", allowed=3, total=10, ef=0, stages=[PlanStage("scan", 1234)], detail="d")
    result = SearchResult([Hit(1, 0.5, {"x": "y"}), Hit("b", 0.25)], plan)
    msg = codec.encode_search_result(result)
    assert [h.score for h in msg.hits] == [0.5, 0.25]
    assert msg.hits[0].id.num == 1 and msg.hits[1].id.str == "b"
    assert codec.decode_attributes(msg.hits[0].attributes) == {"x": "y"}
    assert msg.plan.strategy == "exact"
    assert (msg.plan.allowed, msg.plan.total) == (3, 10)
    assert [(s.name, s.nanos) for s in msg.plan.stages] == [("scan", 1234)]
    assert not codec.encode_search_result(SearchResult([])).HasField("plan")


def test_search_params_zero_ef_means_default_and_k_passes_through() -> None:
    params = codec.decode_search_params(pb.SearchParams(k=0, ef=0))
    assert params.k == 0 and params.ef is None  # the domain rejects k == 0, not the codec
    params = codec.decode_search_params(
        pb.SearchParams(
            k=5, ef=40, exact=True, with_attributes=True, with_vectors=True, explain=True
        )
    )
    assert (
        params.k,
        params.ef,
        params.exact,
        params.with_attributes,
        params.with_vectors,
        params.explain,
    ) == (5, 40, True, True, True, True)
