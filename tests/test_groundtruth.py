"""Exact filtered ground truth and recall@k on hand-checkable cases (benchmarks/groundtruth.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import groundtruth
from benchmarks.filterspec import AttributeTable, Column, mask
from benchmarks.groundtruth import filtered_ground_truth, mean_recall, recall_at_k

# Six points on a line, x = 0..5 (second coordinate 0), with a parity keyword and an int x.
LINE = np.array([[x, 0.0] for x in range(6)], dtype=np.float32)
LINE_TABLE = AttributeTable(
    {
        "parity": Column("keyword", np.array([0, 1, 0, 1, 0, 1]), vocab=("even", "odd")),
        "x": Column("int", np.arange(6, dtype=np.int64)),
    }
)


def gt(queries, filters, k, **kw):
    kw.setdefault("metric", "l2")
    kw.setdefault("progress", False)
    return filtered_ground_truth(
        LINE, np.asarray(queries, np.float32), filters, LINE_TABLE, k, **kw
    )


@pytest.mark.parametrize("path", ["gather", "scan"])
def test_line_by_hand(path: str) -> None:
    # Query at 2.5: squared distances 6.25, 2.25, .25, .25, 2.25, 6.25 → ties broken by id.
    kw = {"gather_rows": 0, "memory_budget": 64} if path == "scan" else {}
    queries = [[2.5, 0]] * 5
    filters = [
        None,
        ["eq", "parity", "odd"],  # 1, 3, 5
        ["range", "x", 4, 4],  # exactly one row passes
        ["range", "x", 10, None],  # none passes
        ["and", ["eq", "parity", "even"], ["range", "x", 1, None]],  # 2, 4
    ]
    ids = gt(queries, filters, 3, **kw)
    assert ids.dtype == np.int64 and ids.shape == (5, 3)
    assert ids.tolist() == [
        [2, 3, 1],
        [3, 1, 5],
        [4, -1, -1],
        [-1, -1, -1],
        [2, 4, -1],
    ]


def test_scan_in_tiny_chunks_and_mask_batches_matches_gather() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(500, 6)).astype(np.float32)
    base[100] = base[7]  # an exact duplicate: a tie across chunks, smaller id first
    queries = rng.normal(size=(40, 6)).astype(np.float32)
    queries[0] = base[7]
    table = AttributeTable({"g": Column("int", rng.integers(0, 5, size=500))})
    filters = [None if i % 7 == 0 else ["range", "g", i % 5, (i % 5) + i % 2] for i in range(40)]
    gathered = filtered_ground_truth(base, queries, filters, table, 8, metric="l2", progress=False)
    scanned = filtered_ground_truth(
        base,
        queries,
        filters,
        table,
        8,
        metric="l2",
        progress=False,
        gather_rows=0,
        memory_budget=4096,
    )
    assert np.array_equal(gathered, scanned)
    assert gathered[0, :2].tolist() == [7, 100]
    # Brute force with a stable sort on float64 distances.
    d = ((queries[:, None, :].astype(np.float64) - base[None]) ** 2).sum(-1)
    for i, flt in enumerate(filters):
        allowed = np.ones(500, bool) if flt is None else mask(flt, table)
        di = np.where(allowed, d[i], np.inf)
        order = np.lexsort((np.arange(500), di))[:8]
        expect = np.where(np.isfinite(di[order]), order, -1)
        assert gathered[i].tolist() == expect.tolist(), i


def test_inner_product_and_angular() -> None:
    base = np.array([[1, 0], [0, 1], [3, 3], [-1, 0], [0.5, 0]], dtype=np.float32)
    q = np.array([[1, 0.2]], dtype=np.float32)
    table = AttributeTable({"x": Column("int", np.arange(5))})
    ip = filtered_ground_truth(base, q, [None], table, 5, metric="ip", progress=False)
    # dots: 1, .2, 3.6, -1, .5
    assert ip[0].tolist() == [2, 0, 4, 1, 3]
    ang = filtered_ground_truth(base, q, [None], table, 5, metric="angular", progress=False)
    # cosines: .98 (rows 0 and 4 tie: same direction), .83 (row 2), .196, -.98
    assert ang[0].tolist() == [0, 4, 2, 1, 3]
    ids, dist = filtered_ground_truth(
        base,
        q,
        [["range", "x", 3, None]],
        table,
        3,
        metric="ip",
        progress=False,
        return_distances=True,
    )
    assert ids[0].tolist() == [4, 3, -1]
    assert dist[0, :2].tolist() == pytest.approx([-0.5, 1.0]) and np.isinf(dist[0, 2])


def test_uint8_base_memmap(tmp_path: Path) -> None:
    raw = np.array([[0, 0], [10, 10], [250, 250], [255, 255]], dtype=np.uint8)
    path = tmp_path / "b.u8"
    raw.tofile(path)
    base = np.memmap(path, dtype=np.uint8, mode="r", shape=(4, 2))
    ids = filtered_ground_truth(
        base, np.array([[255, 254]], np.float32), [None], None, 2, metric="l2", progress=False
    )
    assert ids[0].tolist() == [3, 2]


def test_cache_is_reused_and_keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    q = [[2.5, 0], [0, 0]]
    filters = [None, ["eq", "parity", "odd"]]
    first = gt(q, filters, 2, cache_dir=tmp_path, key="line")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(name.startswith("gt-") for name in files)

    def boom(*args, **kwargs):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(groundtruth, "_compute", boom)
    assert np.array_equal(gt(q, filters, 2, cache_dir=tmp_path, key="line"), first)
    ids, dist = gt(q, filters, 2, cache_dir=tmp_path, key="line", return_distances=True)
    assert np.array_equal(ids, first) and dist.shape == (2, 2)
    # Anything that changes the answer changes the cache key.
    for change in (
        {"k": 3},
        {"filters": [None, ["eq", "parity", "even"]]},
        {"metric": "ip"},
        {"key": "other"},
        {"q": [[2.5, 0], [0, 1]]},
    ):
        args = {"q": q, "filters": filters, "k": 2, "metric": "l2", "key": "line"} | change
        with pytest.raises(AssertionError, match="recomputed"):
            gt(
                args["q"],
                args["filters"],
                args["k"],
                metric=args["metric"],
                cache_dir=tmp_path,
                key=args["key"],
            )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="metric"):
        gt([[0, 0]], [None], 1, metric="cosine")
    with pytest.raises(ValueError, match="filters for"):
        gt([[0, 0]], [None, None], 1)
    with pytest.raises(ValueError, match="attribute table"):
        filtered_ground_truth(
            LINE, LINE[:1], [["eq", "parity", "odd"]], None, 1, metric="l2", progress=False
        )
    with pytest.raises(ValueError, match="unknown field"):
        gt([[0, 0]], [["eq", "nope", 1]], 1)
    with pytest.raises(ValueError, match="k must"):
        gt([[0, 0]], [None], 0)


# --- recall ---------------------------------------------------------------------------------


def test_recall_by_hand() -> None:
    truth = np.array(
        [
            [1, 2, 3, 4],
            [5, 6, -1, -1],  # only two rows pass the filter
            [-1, -1, -1, -1],  # nothing passes
            [-1, -1, -1, -1],
            [7, 8, 9, 10],
        ]
    )
    found = [
        np.array([3, 1, 99]),  # 2 of the first 3 truth ids (k = 3)
        np.array([6, 5]),  # both valid ids: full recall, denominator 2 not 3
        np.array([], dtype=np.int64),  # nothing passes, nothing returned → 1
        np.array([3]),  # nothing passes but something returned → 0
        np.array([7, 7, -1, 8, 9]),  # repeated id counts once; -1 ignored; only first 3 count
    ]
    r = recall_at_k(found, truth, 3)
    assert r.tolist() == pytest.approx([2 / 3, 1.0, 1.0, 0.0, 1 / 3])
    assert mean_recall(found, truth, 3) == pytest.approx(np.mean([2 / 3, 1, 1, 0, 1 / 3]))
    # k = 1 uses only the first column of the ground truth and the first answer.
    assert recall_at_k(found, truth, 1).tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]


def test_recall_rejects_mismatched_inputs() -> None:
    truth = np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="does not match"):
        recall_at_k([np.array([0])], truth, 3)
    with pytest.raises(ValueError, match="recall@4"):
        recall_at_k([np.array([0]), np.array([0])], truth, 4)
    assert np.isnan(mean_recall([], np.zeros((0, 3), np.int64), 3))


def test_posting_list_masks_equal_filterspec() -> None:
    # The ground truth answers `contains` from posting lists; it must mean what filterspec means.
    rng = np.random.default_rng(5)
    lengths = rng.integers(0, 4, size=300)
    lengths[-3:] = 0  # trailing empty rows
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    vocab = tuple(f"t{i}" for i in range(12))
    table = AttributeTable(
        {
            "tags": Column(
                "keyword_list",
                rng.integers(0, 11, size=int(indptr[-1])),  # t11 never occurs
                indptr=indptr,
                vocab=vocab,
            ),
            "n": Column("int", rng.integers(0, 10, size=300)),
        }
    )
    masker = groundtruth._Masker(table)
    filters = [
        ["contains", "tags", "t3"],
        ["contains", "tags", "t11"],
        ["contains", "tags", "nope"],
        ["contains", "tags", 3],
        ["and", ["contains", "tags", "t1"], ["contains", "tags", "t2"]],
        ["or", ["contains", "tags", "t0"], ["not", ["range", "n", 2, 8]]],
        ["not", ["and", ["contains", "tags", "t4"], ["eq", "n", 5]]],
    ]
    for flt in filters:
        assert np.array_equal(masker(flt), mask(flt, table)), flt
    counts = groundtruth.pass_counts([*filters, None, filters[0]], table, 300)
    assert counts.tolist() == [int(mask(f, table).sum()) for f in filters] + [300, counts[0]]
