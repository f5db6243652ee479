"""`sievedb load` round trips for every file format, and its handling of bad input.

Every source file is small, seeded and written by the test under tmp_path. A round trip loads
the file through the CLI into a real gRPC server and reads every point back: ids, vectors
(bit-exact, as float32) and attributes must equal the source. The batch size never divides the
row count, so the last chunk is always partial.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sievedb import Client
from sievedb.cli import main
from sievedb.readers import SourceError, open_source
from sievedb_server.core.engine import Engine

N, DIM, BATCH = 257, 12, 50


def _vectors(seed: int = 3, dtype: Any = np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -100), min(info.max, 200), (N, DIM)).astype(dtype)
    return rng.standard_normal((N, DIM)).astype(dtype)


def _attributes() -> list[dict[str, Any] | None]:
    # Every 7th row has no attributes (an empty line in JSON-lines).
    return [None if i % 7 == 0 else {"g": i % 5, "tag": f"t{i % 3}"} for i in range(N)]


def _write_jsonl(path: Path, attrs: list[dict[str, Any] | None]) -> Path:
    path.write_text("".join((json.dumps(a) if a else "") + "\n" for a in attrs))
    return path


def _write_xvecs(path: Path, data: np.ndarray) -> Path:
    rows = np.empty((data.shape[0],), dtype=[("d", "<i4"), ("v", data.dtype, data.shape[1])])
    rows["d"], rows["v"] = data.shape[1], data
    path.write_bytes(rows.tobytes())
    return path


def _write_bin(path: Path, data: np.ndarray) -> Path:
    path.write_bytes(np.array(data.shape, dtype="<u4").tobytes() + data.tobytes())
    return path


def _load(port: int, *args: str) -> int:
    return main(["load", *args, "--target", f"127.0.0.1:{port}", "--batch-size", str(BATCH),
                 "--no-progress"])


def _read_all(client: Client, name: str) -> dict[Any, tuple[Any, dict[str, Any]]]:
    return {
        p.id: (p.vector, p.attributes or {})
        for p in client.iter_points(name, page_size=500, with_vectors=True)
    }


def _check(client: Client, name: str, ids: list[Any], vecs: np.ndarray,
           attrs: list[dict[str, Any] | None] | None) -> None:
    got = _read_all(client, name)
    assert sorted(map(str, got)) == sorted(map(str, ids))
    assert client.count(name) == len(ids)
    for i, pid in enumerate(ids):
        vector, attributes = got[pid]
        np.testing.assert_array_equal(vector, vecs[i].astype(np.float32))
        assert attributes == ((attrs[i] or {}) if attrs is not None else {})
    info = client.describe_collection(name)
    assert info.point_count == info.indexed_count == len(ids)


@pytest.fixture
def port(server_handle: Any) -> int:
    return int(server_handle[1])


@pytest.fixture
def client(server: tuple[Client, Engine]) -> Client:
    return server[0]


def _create(client: Client, dim: int = DIM) -> None:
    client.create_collection("c", dim, "l2", schema={"g": "integer", "tag": "keyword"})


def test_npy_with_attributes_and_string_ids(tmp_path: Path, port: int, client: Client) -> None:
    vecs, attrs = _vectors(), _attributes()
    np.save(tmp_path / "v.npy", vecs)
    ids = [f"doc-{i:04d}" for i in range(N)]
    (tmp_path / "ids.txt").write_text("".join(f"{x}\n" for x in ids))
    _write_jsonl(tmp_path / "a.jsonl", attrs)
    _create(client)
    assert _load(port, "c", str(tmp_path / "v.npy"), "--ids-file", str(tmp_path / "ids.txt"),
                 "--attributes", str(tmp_path / "a.jsonl")) == 0
    _check(client, "c", ids, vecs, attrs)
    # The filter path sees the loaded attributes.
    assert client.count("c", filter="g == 3") == sum(1 for a in attrs if a and a["g"] == 3)


def test_npy_float64_is_converted_and_created(tmp_path: Path, port: int, client: Client) -> None:
    vecs = _vectors(dtype=np.float64)
    np.save(tmp_path / "v.npy", vecs)
    assert _load(port, "c", str(tmp_path / "v.npy"), "--create", "--metric", "l2") == 0
    _check(client, "c", list(range(N)), vecs.astype(np.float32), None)


@pytest.mark.parametrize("fmt,dtype", [("fvecs", np.float32), ("ivecs", np.int32),
                                       ("bvecs", np.uint8)])
def test_xvecs(tmp_path: Path, port: int, client: Client, fmt: str, dtype: Any) -> None:
    vecs = _vectors(dtype=dtype)
    path = _write_xvecs(tmp_path / f"v.{fmt}", vecs)
    ids = list(range(1000, 1000 + N))
    (tmp_path / "ids.txt").write_text("".join(f"{x}\n" for x in ids))
    _create(client)
    assert _load(port, "c", str(path), "--ids-file", str(tmp_path / "ids.txt")) == 0
    _check(client, "c", ids, vecs, None)


@pytest.mark.parametrize("fmt,dtype", [("fbin", np.float32), ("u8bin", np.uint8),
                                       ("i8bin", np.int8)])
def test_bigann_bin(tmp_path: Path, port: int, client: Client, fmt: str, dtype: Any) -> None:
    vecs = _vectors(dtype=dtype)
    path = _write_bin(tmp_path / f"v.{fmt}", vecs)
    attrs = _attributes()
    _create(client)
    assert _load(port, "c", str(path), "--attributes",
                 str(_write_jsonl(tmp_path / "a.jsonl", attrs))) == 0
    _check(client, "c", list(range(N)), vecs, attrs)


def _arrow_table(vecs: np.ndarray, fixed: bool) -> Any:
    pa = pytest.importorskip("pyarrow")
    flat = pa.array(vecs.reshape(-1))
    vec_col = (pa.FixedSizeListArray.from_arrays(flat, DIM) if fixed else
               pa.ListArray.from_arrays(pa.array(np.arange(0, N * DIM + 1, DIM, dtype=np.int32)),
                                        flat))
    attrs = _attributes()
    return pa.table({
        "id": [f"s{i}" for i in range(N)],
        "emb": vec_col,
        "g": [a["g"] if a else None for a in attrs],
        "tag": [a["tag"] if a else None for a in attrs],
    }), attrs


@pytest.mark.parametrize("fixed", [True, False])
def test_parquet_columns(tmp_path: Path, port: int, client: Client, fixed: bool) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    vecs = _vectors()
    table, attrs = _arrow_table(vecs, fixed)
    pq.write_table(table, tmp_path / "v.parquet", row_group_size=60)
    _create(client)
    assert _load(port, "c", str(tmp_path / "v.parquet"), "--vector-column", "emb",
                 "--id-column", "id", "--attribute-column", "g",
                 "--attribute-column", "tag") == 0
    _check(client, "c", [f"s{i}" for i in range(N)], vecs, attrs)


def test_arrow_ipc(tmp_path: Path, port: int, client: Client) -> None:
    pa = pytest.importorskip("pyarrow")
    vecs = _vectors()
    table, attrs = _arrow_table(vecs, True)
    with (
        pa.OSFile(str(tmp_path / "v.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, table.schema) as writer,
    ):
        for batch in table.to_batches(max_chunksize=40):
            writer.write_batch(batch)
    _create(client)
    assert _load(port, "c", str(tmp_path / "v.arrow"), "--vector-column", "emb",
                 "--attribute-column", "g", "--attribute-column", "tag") == 0
    _check(client, "c", list(range(N)), vecs, attrs)


def test_hdf5_ann_benchmarks_layout(tmp_path: Path, port: int, client: Client) -> None:
    h5py = pytest.importorskip("h5py")
    vecs = _vectors()
    with h5py.File(tmp_path / "d.hdf5", "w") as f:
        f["train"] = vecs
        f["test"] = vecs[:5]
        f["neighbors"] = np.zeros((5, 10), dtype=np.int32)
    _create(client)
    assert _load(port, "c", str(tmp_path / "d.hdf5")) == 0
    _check(client, "c", list(range(N)), vecs, None)
    info = client.describe_collection("c")
    assert info.point_count == N


def test_resume_skips_committed_rows(tmp_path: Path, port: int, client: Client,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    vecs = _vectors()
    np.save(tmp_path / "v.npy", vecs)
    _create(client)
    assert _load(port, "c", str(tmp_path / "v.npy"), "--limit", "120", "--load-id", "L") == 0
    assert client.load_status("c", "L").rows_committed == 120
    capsys.readouterr()
    assert _load(port, "c", str(tmp_path / "v.npy"), "--load-id", "L", "--resume") == 0
    captured = capsys.readouterr()
    assert "at row 120" in captured.err and f"loaded {N - 120} points" in captured.out
    _check(client, "c", list(range(N)), vecs, None)


# --- bad input ---------------------------------------------------------------------------------


def _bad(port: int, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert _load(port, *args) == 1
    return capsys.readouterr().err


def test_bad_inputs_name_file_and_row(
    tmp_path: Path, port: int, client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    _create(client)
    vecs = _vectors()
    # Wrong magic.
    (tmp_path / "junk.npy").write_bytes(b"not a numpy file at all")
    assert "junk.npy: not a .npy file" in _bad(port, capsys, "c", str(tmp_path / "junk.npy"))
    # Truncated .fvecs and .fbin.
    raw = _write_xvecs(tmp_path / "v.fvecs", vecs).read_bytes()
    (tmp_path / "t.fvecs").write_bytes(raw[:-10])
    assert "t.fvecs: truncated at row 256" in _bad(port, capsys, "c", str(tmp_path / "t.fvecs"))
    raw = _write_bin(tmp_path / "v.fbin", vecs).read_bytes()
    (tmp_path / "t.fbin").write_bytes(raw[:-10])
    assert "t.fbin: truncated" in _bad(port, capsys, "c", str(tmp_path / "t.fbin"))
    # Dimension mismatch with the collection.
    np.save(tmp_path / "d.npy", _vectors()[:, :5])
    err = _bad(port, capsys, "c", str(tmp_path / "d.npy"))
    assert "d.npy: vectors have dim 5" in err and "dim 12" in err
    # NaN in row 130: rows of earlier chunks are committed, nothing of the bad chunk is.
    nan = vecs.copy()
    nan[130, 4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    assert "nan.npy: row 130 contains NaN or Inf" in _bad(port, capsys, "c",
                                                          str(tmp_path / "nan.npy"))
    assert client.count("c") == 100  # chunks [0, 50) and [50, 100); not [100, 150)
    # Malformed attribute line 78 (row 77).
    attrs_path = _write_jsonl(tmp_path / "a.jsonl", _attributes())
    lines = attrs_path.read_text().splitlines()
    lines[77] = '{"g": 1,'
    attrs_path.write_text("\n".join(lines) + "\n")
    np.save(tmp_path / "v.npy", vecs)
    err = _bad(port, capsys, "c", str(tmp_path / "v.npy"), "--attributes", str(attrs_path))
    assert "a.jsonl: line 78 (row 77): malformed JSON" in err
    # An attribute file shorter than the vectors.
    attrs_path.write_text("{}\n" * 10)
    assert "a.jsonl: ends at line 11" in _bad(port, capsys, "c", str(tmp_path / "v.npy"),
                                              "--attributes", str(attrs_path))
    # An attribute the schema rejects is refused by the server, naming the row.
    bad_attrs = _attributes()
    bad_attrs[160] = {"g": "not an integer"}
    _write_jsonl(attrs_path, bad_attrs)
    err = _bad(port, capsys, "c", str(tmp_path / "v.npy"), "--attributes", str(attrs_path))
    assert "row 160" in err
    assert client.count("c") == 150  # chunks before row 150 committed; the bad chunk is not
    # The server kept serving throughout.
    assert len(client.search("c", vecs[0], k=3).hits) == 3


def test_reader_edge_cases(tmp_path: Path) -> None:
    # An empty .fvecs file has no rows; a 3-D .npy is refused; unknown extension needs --format.
    (tmp_path / "e.fvecs").write_bytes(b"")
    with open_source(tmp_path / "e.fvecs") as src:
        assert src.rows == 0 and list(src.chunks(10)) == []
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(SourceError, match="need a 2-D"):
        open_source(tmp_path / "cube.npy")
    (tmp_path / "x.dat").write_bytes(b"")
    with pytest.raises(SourceError, match="cannot tell the format"):
        open_source(tmp_path / "x.dat")
    # ids: integers when the first token is digits, strings otherwise; --id-type overrides.
    np.save(tmp_path / "v.npy", _vectors()[:3])
    (tmp_path / "ids.txt").write_text("7\n8\n9\n")
    with open_source(tmp_path / "v.npy", ids_path=tmp_path / "ids.txt") as src:
        assert next(iter(src.chunks(10))).ids == [7, 8, 9]
    with open_source(tmp_path / "v.npy", ids_path=tmp_path / "ids.txt", id_type="str") as src:
        assert next(iter(src.chunks(10))).ids == ["7", "8", "9"]


def test_server_side_import(tmp_path: Path, client: Client) -> None:
    vecs, attrs = _vectors(), _attributes()
    path = _write_bin(tmp_path / "v.fbin", vecs)
    _create(client)
    op = client.start_import("c", str(path), attributes_path=str(
        _write_jsonl(tmp_path / "a.jsonl", attrs)), batch_size=BATCH)
    while not op.done:
        op = client.get_operation(op.id)
    assert op.state == "SUCCEEDED" and op.rows_done == N == op.rows_total
    client.wait_indexed("c", poll=0.05, deadline=60)
    _check(client, "c", list(range(N)), vecs, attrs)
    # A truncated file fails the operation with the file and row; the server keeps serving.
    (tmp_path / "t.fvecs").write_bytes(_write_xvecs(tmp_path / "v.fvecs", vecs).read_bytes()[:-3])
    with pytest.raises(Exception, match="truncated"):
        client.start_import("c", str(tmp_path / "t.fvecs"))
    nan = vecs.copy()
    nan[200] = np.inf
    op = client.start_import("c", str(_write_bin(tmp_path / "nan.fbin", nan)), batch_size=BATCH)
    while not op.done:
        op = client.get_operation(op.id)
    assert op.state == "FAILED" and "nan.fbin: row 200 contains NaN or Inf" in op.error
    assert op.rows_done == 200
    assert client.count("c") == N


def test_missing_optional_reader_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "v.parquet").write_bytes(b"PAR1")
    (tmp_path / "v.hdf5").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(SourceError, match=r"needs the 'pyarrow' package: pip install 'sievedb\[load\]'"):
        open_source(tmp_path / "v.parquet")
    with pytest.raises(SourceError, match=r"needs the 'h5py' package"):
        open_source(tmp_path / "v.hdf5")


def test_load_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["load", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: sievedb load" in out and "--resume" in out and "fvecs" in out


def test_server_side_import_resumes_by_load_id(tmp_path: Path, client: Client) -> None:
    vecs = _vectors()
    path = _write_bin(tmp_path / "v.fbin", vecs)
    _create(client)

    def finish(op: Any) -> Any:
        while not op.done:
            op = client.get_operation(op.id)
        return op

    first = finish(client.start_import("c", str(path), limit=100, load_id="imp", batch_size=BATCH))
    assert first.state == "SUCCEEDED" and first.rows_done == 100
    assert client.load_status("c", "imp").rows_committed == 100
    before = client.describe_collection("c").watermark
    second = finish(client.start_import("c", str(path), load_id="imp", batch_size=BATCH))
    assert second.state == "SUCCEEDED" and second.rows_done == N
    assert client.count("c") == N
    # Only rows 100.. were read again: chunks [100,150) [150,200) [200,250) [250,257).
    assert client.describe_collection("c").watermark == before + 4
