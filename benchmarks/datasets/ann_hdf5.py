"""ann-benchmarks HDF5 files (e.g. `glove-100-angular.hdf5`) for unfiltered runs.

Layout: datasets `train` (base, n × d), `test` (queries), `neighbors` (int, nq × 100, the
exact top-100 of each query in `train`) and `distances`; the file attribute `distance` names
the metric ("euclidean" → "l2", "angular" → "angular", "dot"/"ip" → "ip"; set metrics such as
"jaccard" are refused). The one workload is "unfiltered".

The base is memory-mapped when `train` is stored contiguously and uncompressed (ann-benchmarks
writes it so); otherwise it is read by h5py slices. `limit=N` keeps the first N base vectors
and then the published `neighbors` no longer apply, so the ground truth is recomputed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datasets.base import Dataset
from benchmarks.datasets.formats import FormatError

__all__ = ["METRIC_NAMES", "AnnHdf5"]

METRIC_NAMES = {
    "euclidean": "l2",
    "l2": "l2",
    "angular": "angular",
    "cosine": "angular",
    "dot": "ip",
    "ip": "ip",
}


class AnnHdf5(Dataset):
    """One ann-benchmarks `.hdf5` file."""

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        limit: int | None = None,
        query_limit: int | None = None,
    ) -> None:
        import h5py

        self.path = Path(path)
        self.name = name or self.path.stem
        try:
            self._file: Any = h5py.File(self.path, "r")
        except OSError as exc:
            raise FormatError(f"{self.path}: not an HDF5 file ({exc})") from None
        try:
            for ds_name in ("train", "test"):
                if ds_name not in self._file or self._file[ds_name].ndim != 2:
                    raise FormatError(f"{self.path}: no 2-D {ds_name!r} dataset")
            distance = self._file.attrs.get("distance", "euclidean")
            distance = distance.decode() if isinstance(distance, bytes) else str(distance)
            if distance not in METRIC_NAMES:
                raise FormatError(f"{self.path}: distance {distance!r} is not supported")
            self.metric = METRIC_NAMES[distance]
            self.normalized = False
            self._train = self._file["train"]
            full_n, dim = (int(x) for x in self._train.shape)
            if self._file["test"].shape[1] != dim:
                raise FormatError(
                    f"{self.path}: test is {self._file['test'].shape[1]}-d, train {dim}-d"
                )
            self._full_n = full_n
            self._n = full_n if limit is None else min(full_n, int(limit))
            self._dim = dim
            q = self._file["test"]
            nq = q.shape[0] if query_limit is None else min(q.shape[0], int(query_limit))
            self._queries = np.ascontiguousarray(q[:nq], dtype=np.float32)
            self._base = self._memmap()
        except BaseException:
            self._file.close()
            raise

    def _memmap(self) -> np.ndarray | None:
        """`train` as a memmap when the bytes lie contiguous and raw in the file, else None."""
        ds = self._train
        offset = ds.id.get_offset()
        if offset is None or ds.chunks is not None or ds.compression is not None:
            return None
        full = np.memmap(self.path, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)
        return full[: self._n]

    @property
    def n(self) -> int:
        return self._n

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def subset(self) -> bool:
        return self._n < self._full_n

    @property
    def key(self) -> str:
        return (
            f"ann-hdf5:{self.path.resolve()}:{self.path.stat().st_size}:{self._n}:"
            f"{self._queries.shape[0]}"
        )

    def base_array(self) -> np.ndarray:
        """A memmap when possible, else the base read into memory (compressed files)."""
        if self._base is not None:
            return self._base
        return np.asarray(self._train[: self._n])

    def base_chunks(self, chunk_rows: int = 65_536) -> Iterator[np.ndarray]:
        if chunk_rows <= 0:
            raise ValueError("chunk_rows must be positive")
        for start in range(0, self._n, chunk_rows):
            stop = min(self._n, start + chunk_rows)
            rows = self._base[start:stop] if self._base is not None else self._train[start:stop]
            yield np.ascontiguousarray(rows, dtype=np.float32)

    def queries(self) -> np.ndarray:
        return self._queries

    def ground_truth(self, workload: str) -> np.ndarray | None:
        if workload != "unfiltered" or self.subset or "neighbors" not in self._file:
            return None
        nq = self._queries.shape[0]
        if self._file["neighbors"].shape[0] < nq:
            raise FormatError(f"{self.path}: neighbors has fewer rows than the {nq} queries")
        gt = np.asarray(self._file["neighbors"][:nq], dtype=np.int64)
        gt[gt < 0] = -1
        return gt

    def close(self) -> None:
        self._file.close()
