"""The big-ann-benchmarks NeurIPS'23 filter track (yfcc-10M) from its published files.

One folder holding the files under their published names (override any with the `*_file`
arguments, e.g. for the `dummy2.*` or private-query variants):

| file | format | content |
|---|---|---|
| `base.10M.u8bin` | uint32 n, uint32 d, n·d uint8 | 10M CLIP descriptors, d = 192 (required) |
| `query.public.100K.u8bin` | same | 100k query vectors (required) |
| `base.metadata.10M.spmat` | CSR, int64 nrow/ncol/nnz, int64 indptr, int32 indices, float32 data | tags of each base vector (required for the filtered workload) |
| `query.metadata.public.100K.spmat` | same | the 1–2 tags each query must contain, all of them (AND) |
| `GT.public.ibin` | uint32 n, uint32 k, int32 ids[n·k], float32 dists[n·k] | filtered top-k (k = 10) |
| `unfiltered.GT.public.ibin` | same | unfiltered top-k (optional) |

The distance is Euclidean on the uint8 vectors (`metric = "l2"`; `base_chunks` yields float32).
The base tags become one keyword_list column `tags` whose vocabulary is the tag ids as strings
(column j of the CSR ↔ tag `str(j)`, so the codes are the CSR indices themselves, memory-mapped);
the `tags` workload's filter for a query with tags a, b is
`["and", ["contains", "tags", "a"], ["contains", "tags", "b"]]` (a single tag: just the
`contains`).

`limit=N` takes the first N base vectors and their metadata rows (a prefix subset, as big-ann's
own 1M/10M subsets are prefixes). The published ground truth covers the full base, so it is
then ignored and `exact_ground_truth` recomputes it from the subset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.datasets.base import Dataset
from benchmarks.datasets.formats import Csr, FormatError, read_knn_bin, read_spmat, xbin_memmap
from benchmarks.filterspec import AttributeTable, Column, Filter

__all__ = ["TAGS", "YfccFilter", "tag_filter"]

TAGS = "tags"


def tag_filter(tags: np.ndarray) -> Filter | None:
    """The filter "contains every one of `tags`" (None when the query has no tag)."""
    terms: list[Filter] = [["contains", TAGS, str(int(t))] for t in tags]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else ["and", *terms]


class YfccFilter(Dataset):
    """yfcc-10M (or any dataset in the filter track's file formats) from a local folder."""

    metric = "l2"
    normalized = False

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        limit: int | None = None,
        query_limit: int | None = None,
        base_file: str = "base.10M.u8bin",
        query_file: str = "query.public.100K.u8bin",
        base_metadata_file: str = "base.metadata.10M.spmat",
        query_metadata_file: str = "query.metadata.public.100K.spmat",
        gt_file: str = "GT.public.ibin",
        unfiltered_gt_file: str = "unfiltered.GT.public.ibin",
        dtype: str = "uint8",
    ) -> None:
        self.path = Path(path)
        self.files = {
            "base": base_file,
            "queries": query_file,
            "base_metadata": base_metadata_file,
            "query_metadata": query_metadata_file,
            "gt": gt_file,
            "unfiltered_gt": unfiltered_gt_file,
        }
        for required in ("base", "queries"):
            if not self._file(required).is_file():
                raise FileNotFoundError(f"{self.path}: no {self.files[required]}")
        self.name = name or self.path.resolve().name
        self._full_n = int(xbin_memmap(self._file("base"), dtype).shape[0])
        self._base = xbin_memmap(self._file("base"), dtype, limit)
        self._queries = np.ascontiguousarray(
            xbin_memmap(self._file("queries"), dtype, query_limit), dtype=np.float32
        )
        if self._queries.shape[1] != self.dim:
            raise FormatError(
                f"{self.path}: queries are {self._queries.shape[1]}-d, base {self.dim}-d"
            )
        self._query_limit = query_limit
        self._table: AttributeTable | None = None
        self._loaded = False
        self._workloads: dict[str, list[Filter | None]] | None = None

    def _file(self, role: str) -> Path:
        return self.path / self.files[role]

    @property
    def n(self) -> int:
        return int(self._base.shape[0])

    @property
    def dim(self) -> int:
        return int(self._base.shape[1])

    @property
    def subset(self) -> bool:
        return self.n < self._full_n

    @property
    def key(self) -> str:
        sizes = {
            name: self._file(role).stat().st_size
            for role, name in self.files.items()
            if self._file(role).is_file()
        }
        return (
            f"yfcc-filter:{self.path.resolve()}:{self.n}:{self._query_limit}:"
            f"{json.dumps(sizes, sort_keys=True)}"
        )

    def base_array(self) -> np.ndarray:
        return self._base

    def queries(self) -> np.ndarray:
        return self._queries

    def _metadata(self, role: str, rows: int) -> Csr | None:
        path = self._file(role)
        if not path.is_file():
            return None
        csr = read_spmat(path)
        if csr.nrow < rows:
            raise FormatError(f"{path}: {csr.nrow} metadata rows for {rows} vectors")
        return csr.prefix(rows)

    def table(self) -> AttributeTable | None:
        if not self._loaded:
            csr = self._metadata("base_metadata", self.n)
            if csr is not None:
                vocab = tuple(str(j) for j in range(csr.ncol))
                column = Column("keyword_list", csr.indices, indptr=csr.indptr, vocab=vocab)
                self._table = AttributeTable({TAGS: column})
            self._loaded = True
        return self._table

    def workloads(self) -> dict[str, list[Filter | None]]:
        if self._workloads is None:
            out: dict[str, list[Filter | None]] = {"unfiltered": [None] * self.nq}
            csr = self._metadata("query_metadata", self.nq)
            if csr is not None:
                out[TAGS] = [tag_filter(csr.row(i)) for i in range(self.nq)]
            self._workloads = out
        return self._workloads

    def ground_truth(self, workload: str) -> np.ndarray | None:
        role = {TAGS: "gt", "unfiltered": "unfiltered_gt"}.get(workload)
        if role is None or self.subset or not self._file(role).is_file():
            return None
        ids, _ = read_knn_bin(self._file(role))
        if ids.shape[0] < self.nq:
            raise FormatError(f"{self._file(role)}: {ids.shape[0]} rows for {self.nq} queries")
        return ids[: self.nq]
