"""Unit tests of the LMDB layout, serde and store (id mapping, log, counters)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sievedb_server.core.types import CollectionSpec, FieldSpec, FieldType, HnswParams, Metric
from sievedb_server.errors import CorruptData
from sievedb_server.storage import layout, serde
from sievedb_server.storage.store import CollectionStore

point_ids = st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1),
    st.text(min_size=1, max_size=40),
)


@given(point_ids)
def test_point_id_round_trip(pid: int | str) -> None:
    assert layout.decode_point_id(layout.encode_point_id(pid)) == pid


def test_int_and_str_ids_do_not_collide() -> None:
    assert layout.encode_point_id(1) != layout.encode_point_id("1")
    assert layout.encode_point_id(0) != layout.encode_point_id("\x00")


def test_labels_sort_numerically() -> None:
    labels = [0, 1, 255, 256, 2**40]
    assert sorted(labels, key=layout.encode_label) == labels


def test_corrupt_keys_raise_data_loss() -> None:
    with pytest.raises(CorruptData):
        layout.decode_point_id(b"\x07abc")
    with pytest.raises(CorruptData):
        layout.decode_u64(b"\x00\x01")


def test_attribute_round_trip_keeps_types() -> None:
    attrs = {
        "s": "x",
        "i": -3,
        "f": 2.5,
        "b": True,
        "n": None,
        "l": ["a", "b"],
        "t": datetime(2023, 5, 1, 12, 30, tzinfo=UTC),
    }
    back = serde.unpack_attributes(serde.pack_attributes(attrs))
    assert back == attrs
    assert type(back["i"]) is int and type(back["f"]) is float


def test_unknown_attribute_format_is_data_loss() -> None:
    with pytest.raises(CorruptData):
        serde.unpack_attributes(b"\x09abc")


def test_spec_round_trip() -> None:
    spec = CollectionSpec(
        "c", 8, Metric.L2, HnswParams(m=8, ef_construction=50, ef_search=20),
        (FieldSpec("year", FieldType.INTEGER), FieldSpec("tags", FieldType.KEYWORD_LIST, False)),
    )
    assert serde.unpack_spec(serde.pack_spec(spec)) == spec


def test_store_points_and_log(tmp_path) -> None:
    store = CollectionStore(tmp_path / "s")
    spec = CollectionSpec("c", 4)
    txn = store.write()
    store.init_meta(txn, spec)
    vec = np.arange(4, dtype="<f4")
    store.put_point(txn, 0, "a", vec.tobytes(), {"k": 1}, is_new=True)
    store.put_point(txn, 1, 7, (vec + 1).tobytes(), None, is_new=True)
    store.append_log(txn, 1, np.array([0, 1]))
    store.set_counters(txn, 1, 2)
    store.commit(txn)

    txn = store.write()
    store.delete_point(txn, 0, "a")
    store.append_log(txn, 2, np.array([0]))
    store.set_counters(txn, 2, 2)
    store.commit(txn)

    with store.read() as r:
        assert store.spec(r) == spec
        assert store.watermark(r) == 2 and store.next_label(r) == 2
        assert store.label_of(r, "a") is None and store.label_of(r, 7) == 1
        assert store.id_of(r, 1) == 7
        assert list(store.iter_labels(r)) == [(1, 7)]
        assert store.attributes(r, 1) is None
        labels, vecs = next(store.iter_vectors(r, 4))
        assert labels.tolist() == [1] and np.array_equal(vecs[0], vec + 1)
        first, touched = store.log_since(r, 0)
        assert first == 1 and touched.tolist() == [0, 1]
        first, touched = store.log_since(r, 1)
        assert first == 2 and touched.tolist() == [0]

    txn = store.write()
    store.truncate_log(txn, 1)
    store.commit(txn)
    with store.read() as r:
        assert store.log_since(r, 0)[0] == 2
    store.close()
