"""The dataset interface every benchmark data source implements, and the registry that opens one.

A `Dataset` is what the suite needs from a data source, and nothing format-specific leaks past
it: vectors (streamed; never more memory than the vectors themselves), query vectors, the base
attributes as a `filterspec.AttributeTable`, named workloads (one neutral filter per query) and,
where the files ship one, the published ground truth.

    ds = open_dataset({"kind": "arxiv-fanns", "path": "data/arxiv-for-fanns-medium"})
    for chunk in ds.base_chunks(65_536): ...        # float32 (rows, dim) copies
    filters = ds.workloads()["em"]                   # one filterspec filter per query
    gt = ds.exact_ground_truth("em", k=10, cache_dir=Path("benchmarks/cache"))

Registering a new kind is one line (`register("my-kind", MyDataset)`, or a lazy
`"module:attr"` string so heavy imports wait until the kind is opened).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np

from benchmarks.filterspec import AttributeTable, Column, Filter

__all__ = [
    "METRICS",
    "Dataset",
    "TableBuilder",
    "kinds",
    "open_dataset",
    "register",
]

# "ip": larger inner product is nearer; "l2": smaller Euclidean distance; "angular": larger
# cosine (vectors need not be normalised). ann-benchmarks' "euclidean" is "l2" here.
METRICS = ("ip", "l2", "angular")
DEFAULT_CHUNK_ROWS = 65_536


class Dataset(ABC):
    """One benchmark dataset. Subclasses set `name` and `metric` and implement the abstract parts.

    Row i of the base is id i everywhere (tables, filters, ground truth). A prefix subset
    (`limit=N` in the specs that support it) keeps the first N base rows; published ground
    truth then no longer applies (its neighbours may lie past row N), so `ground_truth` returns
    None and `exact_ground_truth` recomputes it.
    """

    name: str
    metric: str
    normalized: bool = False  # True when the vectors are published unit-norm (ip order = l2)

    @property
    @abstractmethod
    def n(self) -> int:
        """Number of base vectors (after any prefix subset)."""

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @property
    def nq(self) -> int:
        return int(self.queries().shape[0])

    @property
    def subset(self) -> bool:
        """True when this is a prefix of a larger published base (published GT then unusable)."""
        return False

    @property
    def key(self) -> str:
        """A stable identity for caches: changes whenever the base, queries or filters would."""
        return f"{type(self).__name__}:{self.name}:{self.n}x{self.dim}:{self.metric}"

    @abstractmethod
    def base_array(self) -> np.ndarray:
        """The whole base, (n, dim), in its stored dtype (float32, or uint8 for `.u8bin`).

        A read-only memmap wherever the format allows, so taking it costs no memory until rows
        are touched; index it in slices (or use `base_chunks`) rather than converting it whole.
        """

    def base_chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[np.ndarray]:
        """The base in order as float32 C-contiguous copies of at most `chunk_rows` rows."""
        if chunk_rows <= 0:
            raise ValueError("chunk_rows must be positive")
        base = self.base_array()
        for start in range(0, self.n, chunk_rows):
            yield np.ascontiguousarray(base[start : start + chunk_rows], dtype=np.float32)

    @abstractmethod
    def queries(self) -> np.ndarray:
        """The query vectors, float32 (nq, dim) (small enough to hold)."""

    def table(self) -> AttributeTable | None:
        """The base attributes (row i = vector i), or None for an unfiltered dataset."""
        return None

    def workloads(self) -> dict[str, list[Filter | None]]:
        """Workload name → one filter per query (None = unfiltered)."""
        return {"unfiltered": [None] * self.nq}

    def ground_truth(self, workload: str) -> np.ndarray | None:
        """The published ground truth of `workload`: int64 (nq, k), -1 padded; None if absent."""
        return None

    def exact_ground_truth(
        self,
        workload: str,
        k: int,
        *,
        cache_dir: Path | None = None,
        progress: bool = True,
    ) -> np.ndarray:
        """int64 (nq, k) ground truth: the published one if it covers k, else computed exactly.

        Computed ground truth is cached under `cache_dir` (see `benchmarks.groundtruth`).
        """
        published = self.ground_truth(workload)
        if published is not None and published.shape[1] >= k:
            return np.ascontiguousarray(published[:, :k])
        from benchmarks.groundtruth import filtered_ground_truth

        filters = self.workloads()[workload]
        return filtered_ground_truth(
            self.base_array(),
            self.queries(),
            filters,
            self.table(),
            k,
            metric=self.metric,
            cache_dir=cache_dir,
            key=f"{self.key}/{workload}",
            progress=progress,
        )

    def close(self) -> None:
        """Release open files (HDF5 handles)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- building attribute tables row by row --------------------------------------------------


class TableBuilder:
    """Accumulates dict rows into an `AttributeTable` in compact arrays (for streaming loaders).

    `kinds` maps field → filterspec kind. A missing or null value becomes the kind's empty value
    ("" keyword, [] list, False, 0, 0.0) so every row has every field, as filterspec requires.
    Datetime fields take int epoch seconds (convert before `add`).
    """

    def __init__(self, kinds: Mapping[str, str]) -> None:
        self.kinds = dict(kinds)
        self._codes: dict[str, dict[str, int]] = {}
        self._values: dict[str, array[Any]] = {}
        self._indptr: dict[str, array[int]] = {}
        self.rows = 0
        for name, kind in self.kinds.items():
            if kind in ("keyword", "keyword_list"):
                self._codes[name] = {}
            typecode = {"float": "d", "bool": "b"}.get(kind, "q")
            self._values[name] = array(typecode)
            if kind == "keyword_list":
                self._indptr[name] = array("q", [0])

    def add(self, row: Mapping[str, Any]) -> None:
        for name, kind in self.kinds.items():
            value = row.get(name)
            values = self._values[name]
            if kind == "keyword":
                codes = self._codes[name]
                text = "" if value is None else str(value)
                values.append(codes.setdefault(text, len(codes)))
            elif kind == "keyword_list":
                codes = self._codes[name]
                for item in value or ():
                    values.append(codes.setdefault(str(item), len(codes)))
                self._indptr[name].append(len(values))
            elif kind == "bool":
                values.append(1 if value else 0)
            elif kind == "float":
                values.append(0.0 if value is None else float(value))
            else:
                values.append(0 if value is None else int(value))
        self.rows += 1

    def build(self) -> AttributeTable:
        columns: dict[str, Column] = {}
        for name, kind in self.kinds.items():
            raw = self._values[name]
            if kind in ("keyword", "keyword_list"):
                vocab = tuple(self._codes[name])  # insertion order = code order
                values = _np(raw, np.int64).astype(np.int32 if len(vocab) < 2**31 else np.int64)
                indptr = _np(self._indptr[name], np.int64) if kind == "keyword_list" else None
                columns[name] = Column(kind, values, indptr=indptr, vocab=vocab)
            elif kind == "bool":
                columns[name] = Column(kind, _np(raw, np.int8).astype(bool))
            elif kind == "float":
                columns[name] = Column(kind, _np(raw, np.float64))
            else:
                columns[name] = Column(kind, _np(raw, np.int64))
        return AttributeTable(columns)


def _np(raw: array[Any], dtype: type) -> np.ndarray:
    """A numpy copy of a typed array (frombuffer refuses an empty buffer on older numpy)."""
    return np.frombuffer(raw, dtype=dtype).copy() if len(raw) else np.zeros(0, dtype=dtype)


# --- registry ------------------------------------------------------------------------------

Factory = Callable[..., Dataset]
_FACTORIES: dict[str, Factory | str] = {}


def register(kind: str, factory: Factory | str) -> None:
    """Make `open_dataset({"kind": kind, ...})` call `factory(**rest_of_spec)`.

    `factory` is a callable or a lazy `"package.module:attr"` path imported on first use.
    """
    _FACTORIES[kind] = factory


def kinds() -> list[str]:
    return sorted(_FACTORIES)


def open_dataset(spec: Mapping[str, Any]) -> Dataset:
    """Open the dataset a spec describes: `{"kind": ..., **keyword arguments of that kind}`."""
    args = dict(spec)
    kind = args.pop("kind", None)
    if kind not in _FACTORIES:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(kinds())}")
    factory = _FACTORIES[kind]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        _FACTORIES[kind] = factory
    return factory(**args)
