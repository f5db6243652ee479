"""Datasets and exact ground truth for the FANNS suite.

A workload's `dataset:` block is `{kind: ..., params: {...}}`. `synthetic-arxiv` is generated
here (vectors streamed to `.npy` under the cache and memory-mapped); every other kind
(`arxiv-fanns`, `yfcc-filter`, `ann-hdf5`, ...) goes through the dataset registry
`benchmarks.datasets.base.open_dataset` when it is present.

Ground truth is the exact top-k by inner product on the normalised vectors among the rows
passing each filter (`benchmarks.groundtruth.filtered_ground_truth`), computed once per query
set for the largest k of the workload (the top-10 is its prefix), and cached keyed by the
dataset, the filters and the query rows.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.filterspec import AttributeTable, Filter
from benchmarks.harness import cache_key

__all__ = ["Loaded", "ground_truth", "open_dataset"]


@dataclass
class Loaded:
    name: str
    base: np.ndarray  # float32 (n, dim), L2-normalised
    queries: np.ndarray  # float32 (nq, dim)
    table: AttributeTable
    key: str  # cache key of the content
    info: dict[str, Any] = field(default_factory=dict)
    # The query sets a dataset ships (arxiv-fanns em/r/emis, yfcc tags): one filter per query
    # vector, query i with vector i. Used by `family: dataset` workloads.
    workloads: dict[str, list[Filter | None]] | None = None


def open_dataset(spec: dict[str, Any], cache_dir: Path) -> Loaded:
    kind, params = spec["kind"], dict(spec.get("params", {}))
    if kind == "synthetic-arxiv":
        from benchmarks.datasets.synthetic_arxiv import ArxivSpec, generate

        aspec = ArxivSpec(**params)
        data = generate(aspec, cache_dir)
        return Loaded(kind, data.base, data.queries, data.table,
                      cache_key("synthetic-arxiv-v2", asdict(aspec)),
                      {"kind": kind, **asdict(aspec)})
    try:
        registry = importlib.import_module("benchmarks.datasets.base")
    except ImportError as exc:
        raise ValueError(f"dataset kind {kind!r} needs benchmarks.datasets.base, which this "
                         f"checkout does not have ({exc})") from exc
    ds = registry.open_dataset({"kind": kind, **params})
    table = ds.table()
    if table is None:
        raise ValueError(f"{kind}: the dataset has no attributes; the suite is for filtered search")
    base = ds.base_array()
    queries = np.asarray(ds.queries(), dtype=np.float32)
    sample = np.asarray(base[: min(1000, base.shape[0])], dtype=np.float32)
    normalised = ds.metric == "ip" or np.allclose(np.linalg.norm(sample, axis=1), 1.0, atol=1e-3)
    if not normalised:
        # The System contract is inner product on L2-normalised vectors (= cosine); a dataset
        # with another geometry (yfcc's uint8 L2) is run as cosine, on a normalised copy.
        base = _normalised_copy(ds, cache_dir)
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    elif base.dtype != np.float32:
        base = np.asarray(base, dtype=np.float32)
    return Loaded(kind, base, np.ascontiguousarray(queries, dtype=np.float32), table,
                  cache_key(ds.key, "cosine"),
                  {"kind": kind, **params, "metric": ds.metric,
                   "run_as": "ip (as given)" if normalised else "cosine (normalised copy)"},
                  workloads=ds.workloads())


def _normalised_copy(ds: Any, cache_dir: Path) -> np.ndarray:
    path = Path(cache_dir) / "normalised" / f"{cache_key(ds.key)}.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(ds.n, ds.dim))
        pos = 0
        for chunk in ds.base_chunks():
            norms = np.maximum(np.linalg.norm(chunk, axis=1, keepdims=True), 1e-12)
            out[pos : pos + chunk.shape[0]] = chunk / norms
            pos += chunk.shape[0]
        out.flush()
        del out
        tmp.replace(path)
    return np.load(path, mmap_mode="r")


def ground_truth(
    data: Loaded, qrows: list[int], filters: list[Filter | None], k: int, *,
    cache_dir: Path | None, key: str,
) -> np.ndarray:
    """int64 (len(filters), k): exact top-k ids per query by inner product, -1 padded, cached
    (`benchmarks.groundtruth.filtered_ground_truth`: chunked numpy over the passing rows)."""
    from benchmarks.groundtruth import filtered_ground_truth

    queries = np.ascontiguousarray(data.queries[np.asarray(qrows, dtype=np.int64)])
    return np.asarray(filtered_ground_truth(
        data.base, queries, filters, data.table, k, metric="ip", cache_dir=cache_dir,
        key=cache_key("suite-gt-v1", data.key, key, qrows), progress=False,
    ))
