"""Build (or reopen from `benchmarks/cache/`) the systems the benchmarks compare.

* `hnswlib_index`: one hnswlib HNSW graph built directly (the library sievedb wraps).
* `faiss_hnsw`: FAISS `IndexHNSWFlat`, inner product on the normalised vectors.
* `sievedb_engine`: a sievedb collection loaded through `Engine.upsert` in batches (the real
  write path: LMDB transaction + attribute postings + HNSW insert per batch).
* `grpc_server`: the sievedb gRPC server on a loopback port around an engine.

Built artefacts are cached by a hash of everything that determines them, so a second run (or
the other benchmark, which uses the same vectors) reopens them; the build time recorded in
the results is the time of the build that produced the cache (stored next to it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import CACHE_DIR, Timer, cache_key

__all__ = [
    "BuildInfo",
    "faiss_hnsw",
    "grpc_server",
    "hnswlib_index",
    "sievedb_engine",
]

# {"seconds": float, "cached": bool, "threads": int, "path": index file (hnswlib/FAISS)}
BuildInfo = dict[str, Any]


def _threads() -> int:
    return max(1, os.cpu_count() or 1)


def _fingerprint(arr: np.ndarray) -> str:
    """Cheap content hash of a matrix (shape + a strided sample of rows)."""
    step = max(1, arr.shape[0] // 997)
    return cache_key(arr.shape, arr.dtype, np.ascontiguousarray(arr[::step]).tobytes().hex())


def _read_info(path: Path) -> BuildInfo | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    info["cached"] = True
    return info


def hnswlib_index(
    base: np.ndarray, *, m: int, ef_construction: int, space: str = "ip",
    cache_dir: Path = CACHE_DIR,
) -> tuple[Any, BuildInfo]:
    """An hnswlib index over `base` (labels 0..n-1), built once with all cores, then cached."""
    import hnswlib

    key = cache_key("hnswlib", _fingerprint(base), m, ef_construction, space)
    folder = cache_dir / "hnswlib" / key
    path, info_path = folder / "index.bin", folder / "build.json"
    index = hnswlib.Index(space=space, dim=base.shape[1])
    info = _read_info(info_path)
    if path.exists() and info is not None:
        index.load_index(str(path), max_elements=base.shape[0])
        return index, {**info, "path": str(path)}
    folder.mkdir(parents=True, exist_ok=True)
    with Timer() as t:
        index.init_index(max_elements=base.shape[0], M=m, ef_construction=ef_construction,
                         random_seed=100)
        index.add_items(base, np.arange(base.shape[0]), num_threads=_threads())
    index.save_index(str(path))
    info = {"seconds": t.seconds, "cached": False, "threads": _threads()}
    info_path.write_text(json.dumps(info))
    return index, {**info, "path": str(path)}


def faiss_hnsw(
    base: np.ndarray, *, m: int, ef_construction: int, cache_dir: Path = CACHE_DIR
) -> tuple[Any, BuildInfo]:
    """FAISS IndexHNSWFlat (inner product) over the normalised `base`, cached."""
    import faiss

    key = cache_key("faiss", _fingerprint(base), m, ef_construction)
    folder = cache_dir / "faiss" / key
    path, info_path = folder / "index.faiss", folder / "build.json"
    info = _read_info(info_path)
    if path.exists() and info is not None:
        return faiss.read_index(str(path)), {**info, "path": str(path)}
    folder.mkdir(parents=True, exist_ok=True)
    faiss.omp_set_num_threads(_threads())
    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    with Timer() as t:
        index.add(base)
    faiss.write_index(index, str(path))
    info = {"seconds": t.seconds, "cached": False, "threads": _threads()}
    info_path.write_text(json.dumps(info))
    return index, {**info, "path": str(path)}


def sievedb_engine(
    name: str,
    base: np.ndarray,
    *,
    m: int,
    ef_construction: int,
    schema: Sequence[Any] = (),
    records: Callable[[int, int], list[dict[str, object]]] | None = None,
    batch: int = 5000,
    ef_search: int | None = None,
    cache_dir: Path = CACHE_DIR,
    extra_key: str = "",
) -> tuple[Any, BuildInfo]:
    """An open `Engine` holding collection `name` = `base` (ids 0..n-1) and its attributes.

    Loaded with `Engine.upsert` in batches of `batch` points (`records(start, stop)` supplies
    the attribute maps), checkpointed, and cached as a data directory keyed by content.
    """
    from sievedb_server.core.engine import Engine
    from sievedb_server.core.types import CollectionSpec, HnswParams, Metric

    params = HnswParams(m=m, ef_construction=ef_construction)
    if ef_search is not None:
        params = HnswParams(m=m, ef_construction=ef_construction, ef_search=ef_search)
    key = cache_key("sievedb", name, _fingerprint(base), params, schema, extra_key)
    data_dir = cache_dir / "sievedb" / key
    info_path = data_dir / "build.json"
    info = _read_info(info_path)
    if info is not None:
        return Engine(data_dir, sync=True), info
    shutil.rmtree(data_dir, ignore_errors=True)
    engine = Engine(data_dir, sync=True)
    spec = CollectionSpec(name, base.shape[1], Metric.COSINE, params, schema=tuple(schema))
    with Timer() as t:
        engine.create_collection(spec)
        for start in range(0, base.shape[0], batch):
            stop = min(start + batch, base.shape[0])
            attrs = records(start, stop) if records is not None else None
            engine.upsert(name, list(range(start, stop)), base[start:stop], attrs)
    with Timer() as t_ckpt:
        engine.checkpoint()
    info = {"seconds": t.seconds, "checkpoint_seconds": t_ckpt.seconds, "cached": False,
            "threads": _threads(), "batch": batch}
    info_path.write_text(json.dumps(info))
    return engine, info


@contextmanager
def grpc_server(engine: Any, data_dir: Path) -> Iterator[Any]:
    """A started sievedb gRPC server on 127.0.0.1 around `engine`; yields a connected Client."""
    from sievedb import Client
    from sievedb_server.transport.server import create_server

    server, port = create_server("127.0.0.1:0", data_dir, engine=engine)
    server.start()
    client = Client(f"127.0.0.1:{port}", timeout=600.0)
    try:
        yield client
    finally:
        client.close()
        server.shutdown(grace=5.0, close_engine=False)
