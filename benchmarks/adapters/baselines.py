"""The bare-library baselines: numpy exact scan, hnswlib (`filter=` / post-filter), FAISS HNSW.

Each one is what a user of a plain vector library would write: the attributes live in numpy
columns next to the index, and every query first evaluates its filter over those columns
(`filterspec.mask`, inside the timed `search`), then builds what the library needs from the
mask (row ids, a `bytearray` for hnswlib's Python callback, a packed bitmap for FAISS's
`IDSelectorBitmap`). sievedb pays its own filter evaluation on every query, so this is the
like-for-like comparison (the `+filter` rows of the first filtered benchmark).

Indexes are built (or reopened) through `benchmarks.systems`, which caches them by content
under the cache folder; build seconds are those of the build that produced the cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmarks.adapters.base import BuildInfo, System, Unavailable
from benchmarks.filterspec import AttributeTable, Filter, mask

__all__ = ["FaissHnsw", "HnswlibFilter", "HnswlibPostfilter", "NumpyExact"]


class _MaskSystem(System):
    """Shared plumbing: keeps the base and the attribute columns; per-query numpy masks."""

    # The runner may call `search` from several threads at once (multi-thread QPS).
    thread_safe: ClassVar[bool] = True

    def __init__(self, workdir: Path, **build_params: Any) -> None:
        super().__init__(workdir, **build_params)
        self.base = np.empty((0, 0), np.float32)
        self.table: AttributeTable | None = None
        self.cache_dir = Path(build_params.get("cache_dir", workdir))

    def _load(self, base: np.ndarray, table: AttributeTable) -> None:
        self.base = np.ascontiguousarray(base, dtype=np.float32)
        self.table = table

    def _mask(self, flt: Filter | None) -> np.ndarray | None:
        """The allowed rows as a bool mask (None = unfiltered), evaluated now (timed)."""
        if flt is None:
            return None
        assert self.table is not None
        return mask(flt, self.table)


class NumpyExact(_MaskSystem):
    """Exact scan of the rows passing the filter (brute force; recall 1 by construction)."""

    name = "numpy_exact"

    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        self._load(base, table)
        return BuildInfo(seconds=0.0, in_memory=True)

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        m = self._mask(flt)
        n = self.base.shape[0]
        if m is None:
            allowed = np.arange(n)
            scores = self.base @ q
        else:
            allowed = np.flatnonzero(m)
            # Dense: one mat-vec over everything beats gathering a large subset.
            scores = (self.base @ q)[allowed] if allowed.size * 4 > n else self.base[allowed] @ q
        kk = min(k, allowed.size)
        if kk == 0:
            return np.empty(0, np.int64)
        part = np.argpartition(-scores, kk - 1)[:kk]
        return allowed[part[np.argsort(-scores[part])]].astype(np.int64)


class _Hnswlib(_MaskSystem):
    param_names: ClassVar[tuple[str, ...]] = ("ef",)

    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        try:
            import hnswlib  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"hnswlib is not installed: {exc}") from exc
        from benchmarks.systems import hnswlib_index

        self._load(base, table)
        self.index, info = hnswlib_index(
            self.base, m=int(self.build_params.get("m", 16)),
            ef_construction=int(self.build_params.get("ef_construction", 200)),
            cache_dir=self.cache_dir,
        )
        return BuildInfo(seconds=info["seconds"], disk_bytes=os.path.getsize(info["path"]),
                         cached=bool(info.get("cached")), extra={"threads": info["threads"]})


class HnswlibFilter(_Hnswlib):
    """`knn_query(q, k, filter=callback)`: hnswlib's in-traversal filter (a Python callback)."""

    name = "hnswlib_filter"

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        m = self._mask(flt)
        ef = int(self.query_params.get("ef", 64))
        if m is None:
            kk, callback = k, None
        else:
            bits = bytearray(m.view(np.uint8).tobytes())
            kk = min(k, int(np.count_nonzero(m)))
            if kk == 0:
                return np.empty(0, np.int64)

            def callback(label: int) -> bool:
                return bits[label] == 1

        self.index.set_ef(max(ef, kk))
        try:
            labels, _ = self.index.knn_query(q, k=kk, num_threads=1, filter=callback)
        except RuntimeError:  # hnswlib found fewer than kk allowed points: an empty answer
            return np.empty(0, np.int64)
        return labels[0].astype(np.int64)


class HnswlibPostfilter(_Hnswlib):
    """Unfiltered `knn_query` for k·fetch_multiplier candidates, keep the allowed ones."""

    name = "hnswlib_postfilter"
    param_names = ("ef", "fetch_multiplier")

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        m = self._mask(flt)
        ef = int(self.query_params.get("ef", 64))
        mult = float(self.query_params.get("fetch_multiplier", 10))
        fetch = min(self.base.shape[0], max(k, int(k * mult)))
        self.index.set_ef(max(ef, fetch))
        lab = knn_up_to(self.index, q, fetch)
        return lab[:k] if m is None else lab[m[lab]][:k]


def knn_up_to(index: Any, q: np.ndarray, fetch: int) -> np.ndarray:
    """Unfiltered hnswlib labels for up to `fetch` neighbours of one query.

    hnswlib raises RuntimeError when its traversal reaches fewer than `fetch` points (small or
    poorly connected graphs); then ask for half as many, as a user of hnswlib would.
    """
    while fetch >= 1:
        try:
            labels, _ = index.knn_query(q, k=fetch, num_threads=1)
            return labels[0].astype(np.int64)
        except RuntimeError:
            fetch //= 2
    return np.empty(0, np.int64)


class FaissHnsw(_MaskSystem):
    """FAISS `IndexHNSWFlat` (inner product) with `SearchParametersHNSW(sel=IDSelectorBitmap)`."""

    name = "faiss_hnsw"
    param_names = ("ef",)

    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        try:
            import faiss
        except ImportError as exc:
            raise Unavailable(f"faiss-cpu is not installed: {exc}") from exc
        from benchmarks.systems import faiss_hnsw

        self._load(base, table)
        self.index, info = faiss_hnsw(
            self.base, m=int(self.build_params.get("m", 16)),
            ef_construction=int(self.build_params.get("ef_construction", 200)),
            cache_dir=self.cache_dir,
        )
        faiss.omp_set_num_threads(1)  # single-threaded queries (the paper's protocol)
        self._faiss = faiss
        return BuildInfo(seconds=info["seconds"], disk_bytes=os.path.getsize(info["path"]),
                         cached=bool(info.get("cached")), extra={"threads": info["threads"]})

    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        faiss = self._faiss
        m = self._mask(flt)
        ef = int(self.query_params.get("ef", 64))
        if m is None:
            sp = faiss.SearchParametersHNSW(efSearch=ef)
        else:
            packed = np.packbits(m, bitorder="little")
            sel = faiss.IDSelectorBitmap(m.size, faiss.swig_ptr(packed))
            sp = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        _, labels = self.index.search(q[None, :], k, params=sp)
        lab = labels[0]
        return lab[lab >= 0].astype(np.int64)
