"""The one interface every benchmarked system implements (sievedb, baselines and peers).

The suite drives every system the same way:

    system = SomeSystem(workdir, **build_params)       # nothing heavy yet
    info = system.build(base, table)                  # load vectors + attributes, build index
    for params in sweep:                              # e.g. {"ef": 64}
        system.set_query_params(**params)
        ids = system.search(q, flt, k)                # one query, the timed call
        ids2 = system.search_batch(qs, flts, k)       # optional batch path
    system.close()

Contract:
* Vectors are float32, L2-normalised; similarity is inner product (= cosine). Row i of `base`
  has id i; `search` returns int64 row ids, best first, at most k, never an id that fails the
  filter (adapters must not post-process results to hide their system's behaviour, except
  translating ids).
* Filters are `benchmarks.filterspec` filters (None = unfiltered). The adapter translates
  them into its system's own filter language inside `search` (so the translation cost is part
  of the timed query, as it would be for a user) — or caches translations by `id(flt)` only if
  the system's real API is also used that way. `supports(flt)` says whether the system can
  express a filter at all; unsupported workloads are reported, not faked.
* `build` returns `BuildInfo` with wall seconds and the bytes the system keeps on disk under
  `workdir` (0 for pure in-memory systems, with `in_memory=True`).
* Systems that cannot install or run offline raise `Unavailable(reason)` from the constructor;
  the suite records the reason in the report.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmarks.filterspec import AttributeTable, Filter

__all__ = ["BuildInfo", "System", "Unavailable", "dir_bytes"]


class Unavailable(RuntimeError):
    """The system cannot run here (not installed, needs a network service, ...)."""


@dataclass
class BuildInfo:
    seconds: float
    disk_bytes: int = 0
    in_memory: bool = False
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def dir_bytes(path: Path) -> int:
    """Bytes actually allocated under `path` (sparse files count what is allocated)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            total += min(st.st_size, st.st_blocks * 512)
    return total


class System(ABC):
    """A vector search system under test. Subclasses set `name` and `param_names`."""

    name: ClassVar[str]
    # Query-time parameters `set_query_params` accepts (the sweep / tuner varies these).
    param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, workdir: Path, **build_params: Any) -> None:
        self.workdir = Path(workdir)
        self.build_params = build_params
        self.query_params: dict[str, Any] = {}

    @abstractmethod
    def build(self, base: np.ndarray, table: AttributeTable) -> BuildInfo:
        """Load `base` (ids 0..n-1) with the attributes of `table` and build the index."""

    def supports(self, flt: Filter | None) -> bool:
        return True

    def set_query_params(self, **params: Any) -> None:
        unknown = set(params) - set(self.param_names)
        if unknown:
            raise ValueError(f"{self.name} has no query parameters {sorted(unknown)}")
        self.query_params = dict(params)

    @abstractmethod
    def search(self, q: np.ndarray, flt: Filter | None, k: int) -> np.ndarray:
        """Ids (int64, best first, ≤ k) of the nearest rows of `q` passing `flt`."""

    def search_batch(
        self, qs: np.ndarray, flts: Sequence[Filter | None], k: int
    ) -> list[np.ndarray]:
        """Default: one `search` per query; systems with a real batch API override it."""
        return [self.search(q, f, k) for q, f in zip(qs, flts, strict=True)]

    def close(self) -> None:
        """Release resources (servers, file handles)."""
