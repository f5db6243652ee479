"""The HNSW graph's level-0 block on transparent huge pages (index/hugepages.py)."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sievedb_server.core.types import HnswParams, Metric
from sievedb_server.index import hugepages
from sievedb_server.index.hnsw import HnswIndex

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/maps and madvise")
# What the kernel does with the advice depends on its THP mode and version (MADV_COLLAPSE is
# Linux 6.1+); where it cannot collapse, the tests check that nothing else changed.
CAN_COLLAPSE = sys.platform == "linux" and hugepages.thp_mode() in ("always", "madvise")


def _kernel_collapses() -> bool:
    if not CAN_COLLAPSE:
        return False
    major, minor = (int(x) for x in __import__("platform").release().split(".")[:2])
    return (major, minor) >= (6, 1)


HUGE = hugepages.HUGE_PAGE


# -- finding the block ------------------------------------------------------------------------


def test_new_ranges_sees_a_fresh_mapping_whole() -> None:
    assert hugepages._new_ranges({(0, 10)}, {(0, 10), (20, 50)}) == [(20, 50)]


def test_new_ranges_keeps_only_the_grown_part_of_a_merged_mapping() -> None:
    # The kernel merged the new block into its neighbour, at either end.
    assert hugepages._new_ranges({(100, 200)}, {(100, 300)}) == [(200, 300)]
    assert hugepages._new_ranges({(100, 200)}, {(40, 200)}) == [(40, 100)]
    assert hugepages._new_ranges({(100, 200)}, {(40, 260)}) == [(40, 100), (200, 260)]
    assert hugepages._new_ranges({(100, 200)}, {(100, 200)}) == []


@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)), max_size=6),
    st.tuples(st.integers(0, 80), st.integers(1, 40)),
)
def test_new_ranges_never_reports_an_old_byte(
    old: list[tuple[int, int]], grown: tuple[int, int]
) -> None:
    # Old mappings (possibly overlapping in this abstract test) and one new one around them.
    before = {(lo, lo + size) for lo, size in old}
    after = before | {(grown[0], grown[0] + grown[1])}
    new = hugepages._new_ranges(before, after)
    old_bytes = {b for lo, hi in before for b in range(lo, hi)}
    new_bytes = [b for lo, hi in new for b in range(lo, hi)]
    assert not old_bytes & set(new_bytes)
    assert len(new_bytes) == len(set(new_bytes))
    if (grown[0], grown[0] + grown[1]) not in before:
        assert set(new_bytes) == set(range(grown[0], grown[0] + grown[1])) - old_bytes


def test_level0_bytes_is_hnswlibs_layout() -> None:
    # Per slot: link count (4) + 2·M links (4 each) + the float32 vector + the 8-byte label.
    assert hugepages.level0_bytes(1000, 16, 384) == 1000 * (4 + 32 * 4 + 384 * 4 + 8)


@linux_only
def test_a_private_anonymous_block_is_found_and_advised() -> None:
    size = 8 * HUGE
    before = hugepages.anonymous_mappings()
    block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        block.write(b"\x01" * size)  # populate every page, as hnswlib's load does
        got = hugepages.advise_new_block(before, size)
        if CAN_COLLAPSE:
            assert got is not None
            lo, hi = got
            assert lo % HUGE == 0 and hi % HUGE == 0 and 0 < hi - lo <= size
        if _kernel_collapses():
            assert hugepages.huge_bytes_in(got) > 0
    finally:
        block.close()


@linux_only
def test_no_block_of_that_size_means_no_advice() -> None:
    before = hugepages.anonymous_mappings()
    block = mmap.mmap(-1, 8 * HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        assert hugepages.advise_new_block(before, 3 * HUGE) is None
    finally:
        block.close()


def test_turned_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIEVEDB_HUGEPAGES", "0")
    assert not hugepages.enabled()
    assert hugepages.advise_new_block(set(), 64 * HUGE) is None


# -- the graph ----------------------------------------------------------------------------------


def _graph(folder: Path, capacity: int, dim: int) -> HnswIndex:
    g = HnswIndex(folder, dim, Metric.COSINE, HnswParams(m=8, ef_construction=40))
    g.init_empty(capacity)
    return g


def _vectors(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@linux_only
def test_graph_block_on_huge_pages_answers_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 9,000 slots × 4,172 bytes: 37 MB, above glibc's largest mmap threshold (32 MiB), so the
    # block gets a mapping of its own; 2,000 points populate four huge pages' worth of it.
    dim, cap, n = 1024, 9000, 2000
    vecs, queries = _vectors(n, dim, 0), _vectors(20, dim, 1)
    answers = {}
    for setting in ("0", "1"):
        monkeypatch.setenv("SIEVEDB_HUGEPAGES", setting)
        folder = tmp_path / setting
        folder.mkdir()
        g = _graph(folder, cap, dim)
        g.add(np.arange(n), vecs)
        if setting == "0":
            assert g.huge_block is None and g.huge_page_bytes == 0
        elif CAN_COLLAPSE:  # advised while empty: the inserts fault in huge pages
            assert g.huge_block is not None and g.huge_page_bytes > 0
        answers[setting] = g.search(queries, 10, 64)
        # The saved graph loads onto huge pages too, and answers the same.
        g.save(watermark=n)
        again = HnswIndex(folder, dim, Metric.COSINE, HnswParams(m=8, ef_construction=40))
        stamp = again.read_stamp()
        assert stamp is not None and again.try_load(stamp)
        if setting == "1" and _kernel_collapses():
            assert again.huge_page_bytes > 0
        np.testing.assert_array_equal(again.search(queries, 10, 64)[0], answers[setting][0])
    np.testing.assert_array_equal(answers["0"][0], answers["1"][0])
    np.testing.assert_allclose(answers["0"][1], answers["1"][1], rtol=0, atol=0)


@linux_only
def test_growing_the_graph_advises_the_new_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIEVEDB_HUGEPAGES", "1")
    dim = 1024
    g = _graph(tmp_path, 300, dim)  # 1,024 slots (the minimum), 4 MB: left to malloc
    assert g.huge_block is None
    vecs = _vectors(1500, dim, 2)
    g.add(np.arange(1000), vecs[:1000])
    g.ensure_capacity(9000)  # resize_index: a new 37 MB block, the old points copied over
    if CAN_COLLAPSE:
        assert g.huge_block is not None and g.huge_page_bytes > 0
    g.add(np.arange(1000, 1500), vecs[1000:])
    labels, _ = g.search(vecs[::100], 1, 64)
    np.testing.assert_array_equal(labels[:, 0], np.arange(0, 1500, 100))
