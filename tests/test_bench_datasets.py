"""Dataset loaders on tiny files fabricated here, byte by byte, from the published formats.

arxiv-for-fanns (fvecs, JSONL attributes, em/r/emis query files, ground-truth ivecs with SHORT
rows), the big-ann filter track (u8bin, spmat CSR, the kNN ground-truth bin) and ann-benchmarks
HDF5 — each through `open_dataset`, including prefix subsets (whose ground truth is recomputed)
and streaming chunk boundaries. The writers below follow the format specs independently of the
readers under test.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.datasets import Dataset, kinds, open_dataset, register
from benchmarks.datasets.formats import FormatError
from benchmarks.filterspec import mask

# --- writers (straight from the format descriptions) -----------------------------------------


def write_fvecs(path: Path, x: np.ndarray) -> None:
    x = np.asarray(x, dtype="<f4")
    dims = np.full((x.shape[0], 1), x.shape[1], dtype="<i4")
    np.hstack([dims, x.view("<i4")]).tofile(path)


def write_ivecs_rows(path: Path, rows: list[list[int]]) -> None:
    flat: list[int] = []
    for row in rows:
        flat += [len(row), *row]
    np.asarray(flat, dtype="<i4").tofile(path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_xbin(path: Path, x: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.asarray(x.shape, dtype="<u4").tofile(fh)
        x.tofile(fh)


def write_spmat(path: Path, rows: list[list[int]], ncol: int) -> None:
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype("<i8")
    indices = np.asarray([c for r in rows for c in r], dtype="<i4")
    with open(path, "wb") as fh:
        np.asarray([len(rows), ncol, indices.size], dtype="<i8").tofile(fh)
        indptr.tofile(fh)
        indices.tofile(fh)
        np.ones(indices.size, dtype="<f4").tofile(fh)


def write_knn_bin(path: Path, ids: np.ndarray, dist: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.asarray(ids.shape, dtype="<u4").tofile(fh)
        ids.astype("<i4").tofile(fh)
        dist.astype("<f4").tofile(fh)


def epoch(y: int, m: int, d: int) -> int:
    return int(datetime(y, m, d, tzinfo=UTC).timestamp())


def brute_force(base, queries, filters, table, k):
    """Reference: stable sort of float64 squared L2 over the rows each filter passes."""
    base = np.asarray(base, dtype=np.float64)
    out = np.full((len(queries), k), -1)
    for i, (q, flt) in enumerate(zip(queries, filters, strict=True)):
        allowed = np.ones(len(base), bool) if flt is None else mask(flt, table)
        d = np.where(allowed, ((base - q) ** 2).sum(1), np.inf)
        order = np.lexsort((np.arange(len(base)), d))[:k]
        keep = np.isfinite(d[order])
        out[i, : keep.sum()] = order[keep]
    return out


# --- arxiv-for-fanns ------------------------------------------------------------------------

N, DIM, NQ = 7, 4, 3
DATES = [
    (2007, 5, 23),
    (2008, 11, 13),
    (2010, 1, 1),
    (2015, 6, 30),
    (2019, 12, 31),
    (2021, 3, 1),
    (2024, 2, 29),
]
RANGES = [((2008, 1, 1), (2015, 6, 30)), ((2020, 1, 1), (2030, 1, 1)), ((1990, 1, 1), (1991, 1, 1))]


def encode_date(ymd: tuple[int, int, int], fmt: str):
    y, m, d = ymd
    if fmt == "yyyymmdd":
        return y * 10_000 + m * 100 + d
    if fmt == "days":
        return epoch(y, m, d) // 86_400
    if fmt == "seconds":
        return epoch(y, m, d)
    return f"{y:04d}-{m:02d}-{d:02d}"


def arxiv_attributes(i: int, date_fmt: str) -> dict:
    mains = [["cs"], ["math", "cs"], ["physics"], ["cs", "stat"], ["math"], [], ["cs"]][i]
    subs = [f"{m}.X{i}" for m in mains]
    return {
        "submitter": ["Ada", "Bob", "Ada", "Cy", None, "Bob", "Ada"][i],
        "has_comment": i % 2 == 0,
        "number_of_main_categories": len(mains),
        "main_categories": mains,
        "number_of_sub_categories": len(subs),
        "sub_categories": subs,
        "license": "cc-by-4.0" if i % 3 == 0 else "arxiv-nonexclusive-1.0",
        "number_of_versions": 1 + i % 4,
        "update_date": encode_date(DATES[i], date_fmt),
        "number_of_authors": i + 1,
        "authors": [f"author{j}" for j in range(i + 1)],
    }


def make_arxiv(folder: Path, date_fmt: str = "yyyymmdd") -> dict:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(N, DIM)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = rng.normal(size=(NQ, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    folder.mkdir(parents=True, exist_ok=True)
    write_fvecs(folder / "database_vectors.fvecs", base)
    write_fvecs(folder / "query_vectors.fvecs", queries)
    write_jsonl(
        folder / "database_attributes.jsonl", [arxiv_attributes(i, date_fmt) for i in range(N)]
    )
    # Blank lines are tolerated, as some writers end files with one.
    (folder / "database_attributes.jsonl").write_text(
        (folder / "database_attributes.jsonl").read_text() + "\n"
    )
    write_jsonl(folder / "em_query_attributes.jsonl", [{"label": v} for v in (1, 2, 5)])
    write_jsonl(
        folder / "r_query_attributes.jsonl",
        [
            {"range_start": encode_date(a, date_fmt), "range_end": encode_date(b, date_fmt)}
            for a, b in RANGES
        ],
    )
    write_jsonl(
        folder / "emis_query_attributes.jsonl", [{"label": v} for v in ("cs", "stat", "hep")]
    )
    gts = {
        "ground_truth.ivecs": [[3, 1, 0], [2, 6, 5], [0, 4, 1]],
        "ground_truth_em.ivecs": [[0, 2, 6], [1, 3], []],  # short rows: < k items pass
        "ground_truth_r.ivecs": [[1, 2, 3], [5, 6], []],
        "ground_truth_emis.ivecs": [[0, 1, 3], [3], []],
    }
    for name, rows in gts.items():
        write_ivecs_rows(folder / name, rows)
    return {"base": base, "queries": queries, "gts": gts}


@pytest.fixture
def arxiv(tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "arxiv-for-fanns-small"
    return folder, make_arxiv(folder)


def test_arxiv_vectors_stream_in_chunks(arxiv) -> None:
    folder, made = arxiv
    ds = open_dataset({"kind": "arxiv-fanns", "path": str(folder), "progress": False})
    assert isinstance(ds, Dataset)
    assert (ds.name, ds.n, ds.dim, ds.nq, ds.metric) == ("arxiv-for-fanns-small", N, DIM, NQ, "l2")
    assert isinstance(ds.base_array(), np.memmap)
    assert np.array_equal(ds.base_array(), made["base"])
    chunks = list(ds.base_chunks(3))
    assert [c.shape[0] for c in chunks] == [3, 3, 1]
    assert all(c.dtype == np.float32 and c.flags.c_contiguous for c in chunks)
    assert np.array_equal(np.concatenate(chunks), made["base"])
    assert np.array_equal(ds.queries(), made["queries"])
    with pytest.raises(ValueError, match="positive"):
        next(ds.base_chunks(0))


def test_arxiv_attribute_kinds_and_values(arxiv) -> None:
    folder, _ = arxiv
    table = open_dataset({"kind": "arxiv-fanns", "path": folder, "progress": False}).table()
    assert table is not None and len(table) == N
    assert table.schema == {
        "submitter": "keyword",
        "has_comment": "bool",
        "number_of_main_categories": "int",
        "main_categories": "keyword_list",
        "number_of_sub_categories": "int",
        "sub_categories": "keyword_list",
        "license": "keyword",
        "number_of_versions": "int",
        "update_date": "datetime",
        "number_of_authors": "int",
        "authors": "keyword_list",
    }
    rows = list(table.rows())
    assert rows[1]["main_categories"] == ["math", "cs"]
    assert rows[5]["main_categories"] == []
    assert rows[4]["submitter"] == ""  # null keyword → ""
    assert rows[3]["authors"] == ["author0", "author1", "author2", "author3"]
    assert [r["has_comment"] for r in rows] == [True, False, True, False, True, False, True]
    assert rows[1]["update_date"] == epoch(2008, 11, 13)
    assert rows[6]["update_date"] == epoch(2024, 2, 29)


@pytest.mark.parametrize("fmt", ["yyyymmdd", "days", "seconds", "iso"])
def test_arxiv_date_encodings_agree(tmp_path: Path, fmt: str) -> None:
    make_arxiv(tmp_path, fmt)
    ds = open_dataset({"kind": "arxiv-fanns", "path": tmp_path, "progress": False})
    table = ds.table()
    assert ds.date_format == fmt
    assert table.columns["update_date"].values.tolist() == [epoch(*d) for d in DATES]
    assert ds.workloads()["r"] == [
        ["range", "update_date", epoch(*a), epoch(*b)] for a, b in RANGES
    ]
    # An explicit format wins; "raw" keeps the file's integers as an int column.
    if fmt == "yyyymmdd":
        raw = open_dataset(
            {"kind": "arxiv-fanns", "path": tmp_path, "date_format": "raw", "progress": False}
        )
        assert raw.table().columns["update_date"].kind == "int"
        assert raw.table().columns["update_date"].values[1] == 20081113
        assert raw.workloads()["r"][0] == ["range", "update_date", 20080101, 20150630]


def test_arxiv_workloads_are_the_papers_filters(arxiv) -> None:
    folder, _ = arxiv
    ds = open_dataset({"kind": "arxiv-fanns", "path": folder, "progress": False})
    w = ds.workloads()
    assert set(w) == {"unfiltered", "em", "r", "emis"}
    assert w["unfiltered"] == [None] * NQ
    assert w["em"] == [["eq", "number_of_sub_categories", v] for v in (1, 2, 5)]
    assert w["emis"] == [["contains", "main_categories", v] for v in ("cs", "stat", "hep")]
    table = ds.table()
    passing = {
        name: [np.flatnonzero(mask(f, table)).tolist() for f in fl]
        for name, fl in w.items()
        if name != "unfiltered"
    }
    assert passing == {
        "em": [[0, 2, 4, 6], [1, 3], []],
        "r": [[1, 2, 3], [5, 6], []],
        "emis": [[0, 1, 3, 6], [3], []],
    }


def test_arxiv_published_ground_truth_short_rows(arxiv) -> None:
    folder, made = arxiv
    ds = open_dataset({"kind": "arxiv-fanns", "path": folder, "progress": False})
    em = ds.ground_truth("em")
    assert em.dtype == np.int64
    assert em.tolist() == [[0, 2, 6], [1, 3, -1], [-1, -1, -1]]
    assert ds.ground_truth("unfiltered").tolist() == made["gts"]["ground_truth.ivecs"]
    assert ds.ground_truth("nope") is None
    # Published ground truth is used when it covers k ...
    assert ds.exact_ground_truth("em", 2).tolist() == [[0, 2], [1, 3], [-1, -1]]
    # ... and recomputed when it does not (k > its width).
    computed = ds.exact_ground_truth("em", 5, progress=False)
    assert computed.shape == (NQ, 5)
    assert np.array_equal(
        computed, brute_force(made["base"], made["queries"], ds.workloads()["em"], ds.table(), 5)
    )
    # The first query limit keeps the published rows valid.
    few = open_dataset({"kind": "arxiv-fanns", "path": folder, "query_limit": 2, "progress": False})
    assert few.nq == 2 and few.ground_truth("r").tolist() == [[1, 2, 3], [5, 6, -1]]
    assert len(few.workloads()["emis"]) == 2


def test_arxiv_prefix_subset_recomputes_ground_truth(arxiv, tmp_path: Path) -> None:
    folder, made = arxiv
    ds = open_dataset({"kind": "arxiv-fanns", "path": folder, "limit": 5, "progress": False})
    assert ds.n == 5 and len(ds.table()) == 5
    assert np.array_equal(np.concatenate(list(ds.base_chunks(2))), made["base"][:5])
    assert ds.ground_truth("em") is None  # the published GT is for all 7 rows
    cache = tmp_path / "cache"
    for workload in ("unfiltered", "em", "r", "emis"):
        got = ds.exact_ground_truth(workload, 3, cache_dir=cache, progress=False)
        want = brute_force(
            made["base"][:5], made["queries"], ds.workloads()[workload], ds.table(), 3
        )
        assert np.array_equal(got, want), workload
        assert (got < 5).all()
    assert len(list(cache.glob("gt-*.npy"))) == 8  # ids + distances per workload


def test_arxiv_attribute_cache(arxiv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = arxiv
    spec = {"kind": "arxiv-fanns", "path": folder, "cache_dir": tmp_path / "c", "progress": False}
    parsed = open_dataset(spec).table()
    assert len(list((tmp_path / "c").glob("arxiv-attrs-*.npz"))) == 1
    from benchmarks.datasets.arxiv_fanns import ArxivFanns

    def boom(self, path):
        raise AssertionError("parsed the JSONL again")

    monkeypatch.setattr(ArxivFanns, "_read_table", boom)
    ds = open_dataset(spec)
    cached = ds.table()
    assert ds.date_format == "yyyymmdd"
    assert cached.schema == parsed.schema
    assert list(cached.rows()) == list(parsed.rows())
    with pytest.raises(AssertionError, match="again"):  # another prefix is another table
        open_dataset({**spec, "limit": 4}).table()


def test_arxiv_malformed_files(tmp_path: Path) -> None:
    make_arxiv(tmp_path)
    # One row claims another dim: caught when that chunk streams.
    raw = np.fromfile(tmp_path / "database_vectors.fvecs", dtype="<i4").reshape(N, DIM + 1)
    raw[4, 0] = 9
    raw.tofile(tmp_path / "database_vectors.fvecs")
    ds = open_dataset({"kind": "arxiv-fanns", "path": tmp_path, "progress": False})
    with pytest.raises(FormatError, match="row 4 declares dim 9"):
        list(ds.base_chunks(3))
    # A truncated file is not a whole number of rows.
    data = (tmp_path / "query_vectors.fvecs").read_bytes()
    (tmp_path / "query_vectors.fvecs").write_bytes(data[:-3])
    with pytest.raises(FormatError, match="whole number"):
        ds.queries()
    (tmp_path / "query_vectors.fvecs").write_bytes(data)
    # Fewer attribute rows than vectors; a ground-truth row running past the end; bad JSON.
    lines = (tmp_path / "database_attributes.jsonl").read_text().splitlines()
    (tmp_path / "database_attributes.jsonl").write_text("\n".join(lines[:5]) + "\n")
    with pytest.raises(FormatError, match="5 attribute rows for 7"):
        open_dataset({"kind": "arxiv-fanns", "path": tmp_path, "progress": False}).table()
    np.asarray([3, 1, 2], dtype="<i4").tofile(tmp_path / "ground_truth_r.ivecs")
    with pytest.raises(FormatError, match="past the end"):
        open_dataset({"kind": "arxiv-fanns", "path": tmp_path, "progress": False}).ground_truth("r")
    (tmp_path / "em_query_attributes.jsonl").write_text('{"label": 1}\nnot json\n')
    with pytest.raises(FormatError, match="em_query_attributes.jsonl:2"):
        open_dataset({"kind": "arxiv-fanns", "path": tmp_path, "progress": False}).workloads()
    with pytest.raises(FileNotFoundError, match="database_vectors.fvecs"):
        open_dataset({"kind": "arxiv-fanns", "path": tmp_path / "missing"})


# --- big-ann filter track (yfcc) --------------------------------------------------------------

YFCC_BASE_TAGS = [[0, 3], [1], [0, 1, 2], [2, 3], [0], [1, 3], [0, 2, 3], []]  # last row: no tag
YFCC_QUERY_TAGS = [[0], [0, 3], [1, 2], [4]]  # tag 4 occurs nowhere


@pytest.fixture
def yfcc(tmp_path: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, size=(8, 3), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
    write_xbin(tmp_path / "base.10M.u8bin", base)
    write_xbin(tmp_path / "query.public.100K.u8bin", queries)
    write_spmat(tmp_path / "base.metadata.10M.spmat", YFCC_BASE_TAGS, ncol=5)
    write_spmat(tmp_path / "query.metadata.public.100K.spmat", YFCC_QUERY_TAGS, ncol=5)
    # GT k = 2: faiss pads with -1; a UINT32_MAX-style pad reads as a negative int32 too.
    ids = np.array([[4, 0], [0, 6], [2, -1], [-1, -1]], dtype=np.int64)
    ids[3, 1] = (0xFFFFFFFF - 5) - 2**32  # the int32 view of a pad near UINT32_MAX
    write_knn_bin(tmp_path / "GT.public.ibin", ids, np.arange(8, dtype=np.float32).reshape(4, 2))
    return tmp_path, {"base": base, "queries": queries}


def test_yfcc_vectors_tags_and_filters(yfcc) -> None:
    folder, made = yfcc
    ds = open_dataset({"kind": "yfcc-filter", "path": folder})
    assert (ds.n, ds.dim, ds.nq, ds.metric) == (8, 3, 4, "l2")
    assert ds.base_array().dtype == np.uint8 and isinstance(ds.base_array(), np.memmap)
    chunks = list(ds.base_chunks(5))
    assert [c.shape[0] for c in chunks] == [5, 3] and chunks[0].dtype == np.float32
    assert np.array_equal(np.concatenate(chunks), made["base"].astype(np.float32))
    assert np.array_equal(ds.queries(), made["queries"].astype(np.float32))
    table = ds.table()
    assert table.schema == {"tags": "keyword_list"}
    assert [r["tags"] for r in table.rows()] == [[str(t) for t in row] for row in YFCC_BASE_TAGS]
    w = ds.workloads()
    assert w["tags"] == [
        ["contains", "tags", "0"],
        ["and", ["contains", "tags", "0"], ["contains", "tags", "3"]],
        ["and", ["contains", "tags", "1"], ["contains", "tags", "2"]],
        ["contains", "tags", "4"],
    ]
    assert [np.flatnonzero(mask(f, table)).tolist() for f in w["tags"]] == [
        [0, 2, 4, 6],
        [0, 6],
        [2],
        [],
    ]
    assert ds.ground_truth("tags").tolist() == [[4, 0], [0, 6], [2, -1], [-1, -1]]
    assert ds.ground_truth("unfiltered") is None  # no unfiltered GT file in the folder


def test_yfcc_prefix_subset(yfcc, tmp_path: Path) -> None:
    folder, made = yfcc
    ds = open_dataset({"kind": "yfcc-filter", "path": folder, "limit": 5, "query_limit": 3})
    assert ds.n == 5 and ds.nq == 3 and ds.subset
    table = ds.table()
    assert len(table) == 5
    assert [r["tags"] for r in table.rows()] == [[str(t) for t in r] for r in YFCC_BASE_TAGS[:5]]
    assert ds.ground_truth("tags") is None
    got = ds.exact_ground_truth("tags", 2, cache_dir=tmp_path / "c", progress=False)
    want = brute_force(
        made["base"][:5], made["queries"][:3].astype(np.float64), ds.workloads()["tags"], table, 2
    )
    assert np.array_equal(got, want)
    assert got[1].tolist()[1] == -1  # tags 0 and 3 together: only row 0 within the prefix


def test_yfcc_malformed(yfcc) -> None:
    folder, _ = yfcc
    with open(folder / "base.metadata.10M.spmat", "ab") as fh:
        fh.write(b"\0\0\0\0")
    with pytest.raises(FormatError, match="non-zeros"):
        open_dataset({"kind": "yfcc-filter", "path": folder}).table()
    with open(folder / "base.10M.u8bin", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(FormatError, match="header says 8 x 3"):
        open_dataset({"kind": "yfcc-filter", "path": folder})


def test_yfcc_custom_file_names(yfcc) -> None:
    folder, _ = yfcc
    (folder / "base.10M.u8bin").rename(folder / "dummy2.base.10M.u8bin")
    ds = open_dataset({"kind": "yfcc-filter", "path": folder, "base_file": "dummy2.base.10M.u8bin"})
    assert ds.n == 8


# --- ann-benchmarks HDF5 --------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_ann_hdf5(tmp_path: Path, compressed: bool) -> None:
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(2)
    train = rng.normal(size=(20, 5)).astype(np.float32)
    test = rng.normal(size=(4, 5)).astype(np.float32)
    neighbors = np.argsort(((test[:, None] - train[None]) ** 2).sum(-1), axis=1)[:, :10]
    path = tmp_path / "tiny-5-euclidean.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "euclidean"
        opts = {"compression": "gzip", "chunks": (4, 5)} if compressed else {}
        f.create_dataset("train", data=train, **opts)
        f.create_dataset("test", data=test)
        f.create_dataset("neighbors", data=neighbors.astype(np.int32))
        f.create_dataset("distances", data=np.zeros((4, 10), np.float32))
    with open_dataset({"kind": "ann-hdf5", "path": path}) as ds:
        assert (ds.name, ds.n, ds.dim, ds.nq, ds.metric) == ("tiny-5-euclidean", 20, 5, 4, "l2")
        assert isinstance(ds.base_array(), np.memmap) != compressed
        assert np.array_equal(np.concatenate(list(ds.base_chunks(6))), train)
        assert ds.table() is None and ds.workloads() == {"unfiltered": [None] * 4}
        assert ds.ground_truth("unfiltered").tolist() == neighbors.tolist()
        assert ds.exact_ground_truth("unfiltered", 3).tolist() == neighbors[:, :3].tolist()
    with open_dataset({"kind": "ann-hdf5", "path": path, "limit": 12}) as sub:
        assert sub.ground_truth("unfiltered") is None
        got = sub.exact_ground_truth("unfiltered", 3, progress=False)
        assert np.array_equal(got, brute_force(train[:12], test, [None] * 4, None, 3))


def test_ann_hdf5_metrics(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    for distance, metric in (("angular", "angular"), ("jaccard", None)):
        path = tmp_path / f"x-{distance}.hdf5"
        with h5py.File(path, "w") as f:
            f.attrs["distance"] = distance
            f.create_dataset("train", data=np.ones((3, 2), np.float32))
            f.create_dataset("test", data=np.ones((1, 2), np.float32))
        if metric is None:
            with pytest.raises(FormatError, match="jaccard"):
                open_dataset({"kind": "ann-hdf5", "path": path})
        else:
            with open_dataset({"kind": "ann-hdf5", "path": path}) as ds:
                assert ds.metric == metric


# --- registry -------------------------------------------------------------------------------


def test_registry() -> None:
    assert {"arxiv-fanns", "yfcc-filter", "ann-hdf5"} <= set(kinds())
    with pytest.raises(ValueError, match="unknown dataset kind 'nope'"):
        open_dataset({"kind": "nope"})

    class Tiny(Dataset):
        name, metric = "tiny", "ip"

        def __init__(self, rows: int) -> None:
            self.x = np.eye(rows, 3, dtype=np.float32)

        n = property(lambda self: self.x.shape[0])
        dim = property(lambda self: 3)

        def base_array(self):
            return self.x

        def queries(self):
            return self.x[:1]

    register("tiny-test", Tiny)  # the one line a new kind needs
    ds = open_dataset({"kind": "tiny-test", "rows": 3})
    assert ds.n == 3 and [c.shape for c in ds.base_chunks(2)] == [(2, 3), (1, 3)]
    assert ds.workloads() == {"unfiltered": [None]} and ds.ground_truth("unfiltered") is None
    assert ds.exact_ground_truth("unfiltered", 2, progress=False).tolist() == [[0, 1]]
