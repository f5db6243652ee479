"""One collection: LMDB truth + derived vector array and HNSW graph, kept in step.

Write path (serialised by `_write_mutex`): one LMDB write transaction per batch records the
points, a log entry of the labels touched and the new watermark; after commit the change is
applied to the derived structures in sub-batches under the index write lock, so searches wait
at most one sub-batch. The caller is acknowledged only after both, so it reads its writes.

Recovery (on open): the live mask comes from LMDB; the HNSW graph and vector file are loaded
if their stamp is not newer than LMDB and the log still covers everything after it, then the
labels touched since the stamp are replayed from LMDB's current state (idempotent: a live
label is re-added with its stored vector, a dead one is marked deleted). Otherwise both are
rebuilt from LMDB.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sievedb_server.core.rwlock import RWLock
from sievedb_server.core.types import (
    Attributes,
    CollectionInfo,
    CollectionSpec,
    Hit,
    Metric,
    Plan,
    PlanStage,
    Point,
    PointId,
    SearchParams,
    SearchResult,
)
from sievedb_server.errors import CorruptData, PointNotFound
from sievedb_server.index.exact import exact_topk, score_matrix
from sievedb_server.index.hnsw import HnswIndex
from sievedb_server.index.vectors import VectorArray
from sievedb_server.storage.store import CollectionStore

__all__ = ["Collection"]

log = logging.getLogger(__name__)

APPLY_CHUNK = 1024  # rows inserted into the graph per index-lock hold
THREADS = max(1, os.cpu_count() or 1)


class Collection:
    def __init__(self, folder: Path, *, sync: bool = True, spec: CollectionSpec | None = None):
        """Open the collection in `folder`; with `spec`, create it there first."""
        self.folder = folder
        self.store = CollectionStore(folder / "store", sync=sync)
        if spec is not None:
            txn = self.store.write()
            try:
                self.store.init_meta(txn, spec)
            except BaseException:
                txn.abort()
                raise
            self.store.commit(txn)
        with self.store.read() as txn:
            stored = self.store.spec(txn)
            if stored is None:
                raise CorruptData(f"collection folder {folder} has no spec")
            self.spec = stored
            self._watermark = self.store.watermark(txn)
            next_label = self.store.next_label(txn)
        self._write_mutex = threading.Lock()
        self._index_lock = RWLock()
        vec_path = folder / "vectors.f32"
        vec_file_ok = vec_path.exists() and vec_path.stat().st_size >= next_label * self.dim * 4
        self.vectors = VectorArray(
            vec_path, self.dim, next_label, keep_sqnorms=self.metric is Metric.L2
        )
        self.graph = HnswIndex(folder, self.dim, self.metric, self.spec.hnsw)
        self.in_graph = np.zeros(self.vectors.capacity, dtype=bool)
        self._index_watermark = 0
        self._closed = False
        self._recover(vec_file_ok)

    # -- properties ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def metric(self) -> Metric:
        return self.spec.metric

    @property
    def watermark(self) -> int:
        return self._watermark

    # -- recovery --------------------------------------------------------------------------

    def _recover(self, vec_file_ok: bool) -> None:
        started = time.perf_counter_ns()
        with self.store.read() as txn:
            live_labels = np.fromiter(
                (label for label, _ in self.store.iter_labels(txn)), dtype=np.int64
            )
            self.vectors.live[live_labels] = True
            self._live_count = int(live_labels.size)
            stamp = self.graph.read_stamp()
            replay: np.ndarray | None = None
            if stamp is not None and vec_file_ok and stamp.watermark <= self._watermark:
                first, touched = self.store.log_since(txn, stamp.watermark)
                covered = stamp.watermark == self._watermark or first == stamp.watermark + 1
                if covered and self.graph.try_load(stamp):
                    replay = touched
        if replay is None:
            self._rebuild()
            how = "rebuilt"
        else:
            self.vectors.recompute_sqnorms()
            self._replay(replay)
            how = f"loaded, replayed {replay.size} labels"
        log.info(
            "collection %s open: %d points, watermark %d, index %s in %.1f ms",
            self.name,
            self._live_count,
            self._watermark,
            how,
            (time.perf_counter_ns() - started) / 1e6,
        )

    def _rebuild(self) -> None:
        self.graph.init_empty(max(self._live_count, 1024))
        self.in_graph[:] = False
        with self.store.read() as txn:
            for labels, vecs in self.store.iter_vectors(txn, self.dim):
                self._grow(int(labels.max()) + 1)
                self.vectors.write(labels, vecs)
                self.graph.add(labels, vecs, num_threads=THREADS)
                self.in_graph[labels] = True
        self._index_watermark = 0  # nothing saved reflects this graph yet

    def _replay(self, touched: np.ndarray) -> None:
        self._grow(int(touched.max()) + 1 if touched.size else 0)
        in_graph = self.graph.labels()
        if in_graph.size:
            self._grow(int(in_graph.max()) + 1)
            self.in_graph[in_graph] = True
        stamp = self.graph.read_stamp()
        self._index_watermark = stamp.watermark if stamp is not None else 0
        if touched.size == 0:
            return
        alive = touched[self.vectors.live[touched]]
        dead = touched[~self.vectors.live[touched]]
        with self.store.read() as txn:
            rows = [self.store.vector(txn, int(lb)) for lb in alive]
        if any(r is None for r in rows):
            raise CorruptData(f"collection {self.name}: a live point has no stored vector")
        if alive.size:
            vecs = np.frombuffer(b"".join(r for r in rows if r), dtype="<f4").reshape(-1, self.dim)
            self.vectors.write(alive, vecs)
            self.graph.add(alive, vecs, num_threads=THREADS)
            self.in_graph[alive] = True
        self.graph.mark_deleted(dead)
        self.in_graph[dead] = False

    def _grow(self, needed: int) -> None:
        """Make room for labels < needed in every label-indexed structure (write lock held)."""
        if self.vectors.ensure_capacity(needed):
            grown = np.zeros(self.vectors.capacity, dtype=bool)
            grown[: self.in_graph.shape[0]] = self.in_graph
            self.in_graph = grown
        self.graph.ensure_capacity(needed)

    # -- writes ----------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[PointId],
        vectors: np.ndarray,
        attributes: Sequence[Attributes | None] | None,
    ) -> int:
        """Insert or replace points; returns the watermark the batch committed as."""
        if self.metric is Metric.COSINE:
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        n = len(ids)
        labels = np.empty(n, dtype=np.int64)
        with self._write_mutex:
            txn = self.store.write()
            try:
                seq = self.store.watermark(txn) + 1
                next_label = self.store.next_label(txn)
                new_points = 0
                for i, pid in enumerate(ids):
                    label = self.store.label_of(txn, pid)
                    is_new = label is None
                    if label is None:
                        label, next_label = next_label, next_label + 1
                        new_points += 1
                    attrs = attributes[i] if attributes is not None else None
                    self.store.put_point(
                        txn, label, pid, vectors[i].tobytes(), attrs, is_new=is_new
                    )
                    labels[i] = label
                self.store.append_log(txn, seq, labels)
                self.store.set_counters(txn, seq, next_label)
            except BaseException:
                txn.abort()
                raise
            self.store.commit(txn)
            self._watermark = seq
            self._apply_upsert(labels, vectors, new_points)
        return seq

    def _apply_upsert(self, labels: np.ndarray, vectors: np.ndarray, new_points: int) -> None:
        # The last occurrence of a label in the batch wins, as in LMDB.
        rev_unique, rev_idx = np.unique(labels[::-1], return_index=True)
        keep = len(labels) - 1 - rev_idx
        labels, vectors = rev_unique, vectors[keep]
        for start in range(0, len(labels), APPLY_CHUNK):
            lb = labels[start : start + APPLY_CHUNK]
            vec = vectors[start : start + APPLY_CHUNK]
            with self._index_lock.write():
                self._grow(int(lb.max()) + 1)
                self.graph.add(lb, vec, num_threads=THREADS)
                self.vectors.write(lb, vec)
                self.in_graph[lb] = True
        with self._index_lock.write():
            self._live_count += new_points

    def delete(self, ids: Sequence[PointId]) -> tuple[int, int]:
        """Delete the points that exist; returns (deleted, watermark)."""
        with self._write_mutex:
            txn = self.store.write()
            try:
                labels = []
                for pid in dict.fromkeys(ids):
                    label = self.store.label_of(txn, pid)
                    if label is not None:
                        self.store.delete_point(txn, label, pid)
                        labels.append(label)
                if not labels:
                    txn.abort()
                    return 0, self._watermark
                seq = self.store.watermark(txn) + 1
                arr = np.asarray(labels, dtype=np.int64)
                self.store.append_log(txn, seq, arr)
                self.store.set_counters(txn, seq, self.store.next_label(txn))
            except BaseException:
                txn.abort()
                raise
            self.store.commit(txn)
            self._watermark = seq
            with self._index_lock.write():
                self.vectors.kill(arr)
                self.graph.mark_deleted(arr)
                self.in_graph[arr] = False
                self._live_count -= len(arr)
        return len(arr), seq

    # -- reads -----------------------------------------------------------------------------

    def count(self) -> int:
        return self._live_count

    def get(
        self,
        ids: Sequence[PointId],
        *,
        with_vectors: bool,
        with_attributes: bool,
        allow_missing: bool,
    ) -> list[Point]:
        points: list[Point] = []
        missing: list[PointId] = []
        with self.store.read() as txn:
            for pid in ids:
                label = self.store.label_of(txn, pid)
                if label is None:
                    missing.append(pid)
                    continue
                vec = None
                if with_vectors:
                    raw = self.store.vector(txn, label)
                    vec = None if raw is None else np.frombuffer(raw, dtype="<f4").copy()
                attrs = (self.store.attributes(txn, label) or {}) if with_attributes else None
                points.append(Point(id=pid, vector=vec, attributes=attrs))
        if missing and not allow_missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise PointNotFound(f"collection {self.name!r} has no point {shown}{more}")
        return points

    def search_batch(self, queries: np.ndarray, params: SearchParams) -> list[SearchResult]:
        """Unfiltered k-NN for each row of `queries` (already validated, float32)."""
        if self.metric is Metric.COSINE:
            queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        ef = params.ef or self.spec.hnsw.ef_search
        with self._index_lock.read():
            total = self._live_count
            k = min(params.k, total)
            t0 = time.perf_counter_ns()
            use_exact = params.exact or total <= self.spec.hnsw.full_scan_threshold
            strategy = "exact" if use_exact else "hnsw"
            labels = scores = None
            if not use_exact and k > 0:
                try:
                    labels, dists = self.graph.search(
                        queries, k, ef, num_threads=1 if len(queries) == 1 else THREADS
                    )
                    scores = dists if self.metric is Metric.L2 else 1.0 - dists
                except RuntimeError:
                    strategy = "exact (hnsw returned fewer than k)"
            if labels is None:
                labels, scores = self._exact(queries, k)
            t1 = time.perf_counter_ns()
            vecs = self.vectors.data[labels.ravel()].reshape(*labels.shape, self.dim).copy() if (
                params.with_vectors
            ) else None
        results = self._materialise(labels, scores, vecs, params)
        t2 = time.perf_counter_ns()
        if not params.explain:
            return results
        per_query = len(queries)
        plan_stages = [
            PlanStage("search", (t1 - t0) // per_query),
            PlanStage("fetch", (t2 - t1) // per_query),
        ]
        return [
            SearchResult(
                r.hits,
                Plan(strategy, allowed=total, total=total, ef=0 if use_exact else max(ef, k),
                     stages=list(plan_stages)),
            )
            for r in results
        ]

    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        hi = self.vectors.capacity
        live = self.vectors.live[:hi]
        labels = np.flatnonzero(live)
        if labels.size == 0 or k == 0:
            shape = (len(queries), 0)
            return np.empty(shape, dtype=np.int64), np.empty(shape, dtype=np.float32)
        return self.exact_among(queries, labels, k)

    def exact_among(
        self, queries: np.ndarray, labels: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of each query among `labels` (sorted, live); caller holds the read lock."""
        sq = self.vectors.sqnorms
        if labels.size == self.vectors.capacity or labels.size * 2 > self.vectors.capacity:
            # Dense: score the contiguous prefix and drop the dead rows, avoiding a gather.
            hi = int(labels[-1]) + 1
            scores = score_matrix(
                self.vectors.data[:hi], queries, self.metric, None if sq is None else sq[:hi]
            )
            dead = ~self.vectors.live[:hi]
            scores[:, dead] = np.inf if self.metric is Metric.L2 else -np.inf
            pos, top = exact_topk(scores, k, self.metric)
            return pos, top
        sub = self.vectors.data[labels]
        scores = score_matrix(sub, queries, self.metric, None if sq is None else sq[labels])
        pos, top = exact_topk(scores, k, self.metric)
        return labels[pos], top

    def _materialise(
        self,
        labels: np.ndarray,
        scores: np.ndarray,
        vecs: np.ndarray | None,
        params: SearchParams,
    ) -> list[SearchResult]:
        results: list[SearchResult] = []
        with self.store.read() as txn:
            for qi in range(labels.shape[0]):
                hits: list[Hit] = []
                for j in range(labels.shape[1]):
                    label = int(labels[qi, j])
                    pid = self.store.id_of(txn, label)
                    if pid is None:
                        continue  # deleted after the index answered
                    attrs = (
                        (self.store.attributes(txn, label) or {})
                        if params.with_attributes
                        else None
                    )
                    vec = vecs[qi, j] if vecs is not None else None
                    hits.append(Hit(pid, float(scores[qi, j]), attrs, vec))
                results.append(SearchResult(hits))
        return results

    # -- maintenance -----------------------------------------------------------------------

    def info(self) -> CollectionInfo:
        with self._index_lock.read():
            hi = self.vectors.capacity
            indexed = int(np.count_nonzero(self.in_graph[:hi] & self.vectors.live[:hi]))
            return CollectionInfo(
                spec=self.spec,
                point_count=self._live_count,
                indexed_count=indexed,
                watermark=self._watermark,
                index_watermark=self._index_watermark,
                disk_bytes=self.disk_bytes(),
            )

    def disk_bytes(self) -> int:
        files = [p for p in self.folder.iterdir() if p.is_file()]
        return self.store.disk_bytes() + sum(p.stat().st_size for p in files)

    @property
    def dirty(self) -> bool:
        return self._watermark != self._index_watermark

    def checkpoint(self) -> bool:
        """Save the graph and vector file stamped with the watermark; trim the log. True if saved."""
        with self._write_mutex:
            if self._closed or not self.dirty:
                return False
            watermark = self._watermark
            with self._index_lock.read():
                self.vectors.flush()
                self.graph.save(watermark)
            txn = self.store.write()
            try:
                self.store.truncate_log(txn, watermark)
            except BaseException:
                txn.abort()
                raise
            self.store.commit(txn)
            self._index_watermark = watermark
            return True

    def close(self, *, checkpoint: bool = True) -> None:
        if checkpoint:
            self.checkpoint()
        with self._write_mutex, self._index_lock.write():
            if self._closed:
                return
            self._closed = True
            self.vectors.close()
            self.store.close()
