"""The hnswlib adapter: one HNSW graph per collection, saved with the watermark it reflects.

The graph is derived from LMDB. `save()` writes `index.hnsw` then `index.meta` (msgpack stamp:
format, watermark, capacity, parameters), each via a temporary file, fsync and atomic rename,
so the stamp never claims more than the graph file holds. hnswlib is not safe for
concurrent mutation and search; the owning collection holds a readers-writer lock around it.

Out of space: hnswlib writes with an unchecked `std::ofstream`, so a full disk leaves a short
temporary file and no error. `save` checks the file against the smallest size the graph can
have and raises OSError(ENOSPC) instead of renaming a short file into place (the previous
graph and stamp stay; LMDB holds every write). A short file that still passes this bound
(truncated inside the upper-level links) is refused by hnswlib's own size checks on load,
which makes `try_load` fail and the collection rebuild from LMDB: slower, never wrong.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hnswlib
import msgpack
import numpy as np
from pyroaring import BitMap

from sievedb_server.core.types import HnswParams, Metric
from sievedb_server.index import hugepages, native_filter
from sievedb_server.index.column_filter import ColumnFilter

__all__ = ["HnswIndex", "IndexStamp"]

STAMP_FORMAT = 1
_HEADER_BYTES = 96  # hnswlib 0.8 saveIndex: 6 size_t, int, uint32, 3 size_t, double, size_t
_SPACE = {Metric.COSINE: "ip", Metric.INNER_PRODUCT: "ip", Metric.L2: "l2"}


@dataclass(frozen=True)
class IndexStamp:
    watermark: int
    capacity: int
    dim: int
    space: str
    m: int
    ef_construction: int


def _rows(queries: np.ndarray) -> int:
    return 1 if np.ndim(queries) == 1 else len(queries)


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class HnswIndex:
    def __init__(self, folder: Path, dim: int, metric: Metric, params: HnswParams) -> None:
        self.folder = folder
        self.dim = dim
        self.metric = metric
        self.params = params
        self.space = _SPACE[metric]
        self.index = hnswlib.Index(space=self.space, dim=dim)
        # The level-0 block's address range when it was advised onto huge pages (hugepages.py).
        self.huge_block: tuple[int, int] | None = None

    @property
    def graph_path(self) -> Path:
        return self.folder / "index.hnsw"

    @property
    def stamp_path(self) -> Path:
        return self.folder / "index.meta"

    # -- lifecycle -------------------------------------------------------------------------

    def init_empty(self, capacity: int) -> None:
        """Start a new, empty graph (dropping any current one)."""
        self.index = hnswlib.Index(space=self.space, dim=self.dim)
        capacity = max(capacity, 1024)
        self._allocating(capacity, lambda: self.index.init_index(
            max_elements=capacity,
            M=self.params.m,
            ef_construction=self.params.ef_construction,
            random_seed=100,
        ))
        self.index.set_ef(self.params.ef_search)

    def read_stamp(self) -> IndexStamp | None:
        try:
            doc = msgpack.unpackb(self.stamp_path.read_bytes(), raw=False)
            if doc.get("format") != STAMP_FORMAT:
                return None
            return IndexStamp(
                watermark=int(doc["watermark"]),
                capacity=int(doc["capacity"]),
                dim=int(doc["dim"]),
                space=str(doc["space"]),
                m=int(doc["m"]),
                ef_construction=int(doc["ef_construction"]),
            )
        except (OSError, ValueError, KeyError, TypeError, msgpack.ExtraData):
            return None

    def try_load(self, stamp: IndexStamp) -> bool:
        """Load the saved graph if it matches this collection; False means rebuild."""
        if (stamp.dim, stamp.space, stamp.m, stamp.ef_construction) != (
            self.dim,
            self.space,
            self.params.m,
            self.params.ef_construction,
        ) or not self.graph_path.exists():
            return False
        try:
            self._allocating(stamp.capacity, lambda: self.index.load_index(
                str(self.graph_path), max_elements=stamp.capacity
            ))
        except RuntimeError:
            self.index = hnswlib.Index(space=self.space, dim=self.dim)
            return False
        self.index.set_ef(self.params.ef_search)
        return True

    def save(self, watermark: int) -> None:
        self.save_to(self.folder, watermark)

    def save_to(self, folder: Path, watermark: int, *, sync: bool = True) -> None:
        """Write `index.hnsw` + `index.meta` into `folder` (snapshots save into their own).

        `sync=False` skips the fsyncs, for a staging copy that is made durable later.
        """
        folder.mkdir(parents=True, exist_ok=True)
        replace = _fsync_replace if sync else os.replace
        graph_path, stamp_path = folder / self.graph_path.name, folder / self.stamp_path.name
        tmp_graph = graph_path.with_suffix(".hnsw.tmp")
        try:
            self.index.save_index(str(tmp_graph))
            size, least = tmp_graph.stat().st_size, self._min_file_bytes()
            if size < least:
                raise OSError(
                    errno.ENOSPC, f"short write saving the graph ({size} of >= {least} bytes)"
                )
            replace(tmp_graph, graph_path)
        except BaseException:
            tmp_graph.unlink(missing_ok=True)
            raise
        stamp = {
            "format": STAMP_FORMAT,
            "watermark": watermark,
            "capacity": self.index.get_max_elements(),
            "dim": self.dim,
            "space": self.space,
            "m": self.params.m,
            "ef_construction": self.params.ef_construction,
        }
        tmp_stamp = stamp_path.with_suffix(".meta.tmp")
        try:
            tmp_stamp.write_bytes(msgpack.packb(stamp))
            replace(tmp_stamp, stamp_path)
        except BaseException:
            tmp_stamp.unlink(missing_ok=True)
            raise

    def _min_file_bytes(self) -> int:
        """hnswlib's file size without upper-level links: a lower bound of a complete save.

        Per element: level-0 links (count + 2M ids), the vector, the label, the upper-link
        size field.
        """
        per_element = (2 * self.params.m * 4 + 4) + self.dim * 4 + 8 + 4
        return _HEADER_BYTES + int(self.index.element_count) * per_element

    # -- mutation (caller holds the write lock) ----------------------------------------------

    @property
    def capacity(self) -> int:
        return int(self.index.get_max_elements())

    def ensure_capacity(self, needed: int) -> None:
        cap = self.capacity
        if needed > cap:
            new_cap = max(needed, cap * 2)
            self._allocating(new_cap, lambda: self.index.resize_index(new_cap))

    def _allocating(self, capacity: int, allocate: Callable[[], None]) -> None:
        """Run `allocate` (hnswlib (re)allocating the level-0 block for `capacity` slots), then
        ask for huge pages for the block (hugepages.py)."""
        nbytes = hugepages.level0_bytes(capacity, self.params.m, self.dim)
        self.huge_block = None
        if not hugepages.enabled() or nbytes < hugepages.HUGE_PAGE:
            allocate()
            return
        before = hugepages.anonymous_mappings()
        allocate()
        self.huge_block = hugepages.advise_new_block(before, nbytes)

    @property
    def huge_page_bytes(self) -> int:
        """Bytes of the level-0 block on huge pages now (reads /proc: not for hot paths)."""
        return hugepages.huge_bytes_in(self.huge_block)

    def labels(self) -> np.ndarray:
        """Every label in the graph, including marked-deleted ones."""
        return np.asarray(self.index.get_ids_list(), dtype=np.int64)

    def add(self, labels: np.ndarray, vectors: np.ndarray, num_threads: int = 1) -> None:
        """Insert or replace (re-adding a label updates its vector and un-deletes it)."""
        if len(labels) == 0:
            return
        self.ensure_capacity(int(self.index.element_count) + len(labels))
        self.index.add_items(vectors, labels, num_threads=num_threads)

    def mark_deleted(self, labels: np.ndarray) -> None:
        for label in labels.tolist():
            try:
                self.index.mark_deleted(label)
            except RuntimeError:
                pass  # not in the graph, or already deleted: both mean "not searchable"

    # -- search (caller holds the read lock) -------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        ef: int,
        filter_fn: Callable[[int], bool] | None = None,
        num_threads: int = 1,
        *,
        allowed: BitMap | None = None,
        column_filter: ColumnFilter | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels and hnswlib distances, shape (n, k); raises RuntimeError when short of k.

        `allowed` restricts the search to those labels. It uses the C++ filter
        (native_filter, no Python call per candidate) when that is available and hnswlib runs
        the search on this thread; otherwise `allowed.__contains__`. With `filter_fn` as well,
        a label must pass both (a Python callback). `column_filter` instead restricts it to
        labels that pass a column test (column_filter.py; C++ or its Python callback; not
        combined with the others).
        """
        self.index.set_ef(max(ef, k))
        if column_filter is not None:
            if native_filter.NATIVE and (
                num_threads == 1 or native_filter.runs_inline(_rows(queries), num_threads)
            ):
                labels, dists = native_filter.knn_query_column(
                    self.index, queries, k, column_filter, num_threads
                )
                return labels.astype(np.int64), dists
            filter_fn = column_filter.callback()
        elif allowed is not None and filter_fn is not None:
            check = filter_fn
            filter_fn = lambda label: label in allowed and check(label)  # noqa: E731
        elif allowed is not None:
            if native_filter.NATIVE and (
                num_threads == 1 or native_filter.runs_inline(_rows(queries), num_threads)
            ):
                labels, dists = native_filter.knn_query(
                    self.index, queries, k, allowed, num_threads
                )
                return labels.astype(np.int64), dists
            filter_fn = allowed.__contains__
        labels, dists = self.index.knn_query(queries, k=k, num_threads=num_threads, filter=filter_fn)
        return labels.astype(np.int64), dists
