"""One collection: LMDB truth + derived vector array and HNSW graph, kept in step.

Write path (serialised by `_write_mutex`): one LMDB write transaction per batch records the
points, a log entry of the labels touched and the new watermark; after commit the change is
applied to the derived structures in sub-batches under the index write lock, so searches wait
at most one sub-batch. The caller is acknowledged only after both, so it reads its writes.

Bulk path (`bulk_upsert`): the same one-transaction-per-chunk durability, but graph
insertion is deferred. After commit a chunk is mirrored into the vector array, the live
mask/bitmap and the posting lists (so exact search and filters see it at once) and its new
labels join `pending`; a background indexer thread inserts pending labels into the graph in
batches with `add_items(num_threads=all cores)`. A point that is already in the graph and is
overwritten by the bulk path is updated in the graph synchronously, which keeps the invariant
"a live label is either in the graph with its current vector, or pending". While the graph
lags, `search_batch` merges graph answers with an exact scan of the pending labels
(`merge_pending`), so results never miss a stored point.

Recovery (on open): the live mask comes from LMDB; the HNSW graph and vector file are loaded
if their stamp is not newer than LMDB and the log still covers everything after it, then the
labels touched since the stamp are replayed from LMDB's current state (idempotent: a live
label is re-added with its stored vector, a dead one is marked deleted). Otherwise both are
rebuilt from LMDB. Live labels absent from the graph afterwards (pending at the last
checkpoint, or deferred because replay/rebuild is large) become pending again: their vectors
are in the vector file, which every checkpoint flushes before stamping.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pyroaring import BitMap

from sievedb_server.core import deadline
from sievedb_server.core.observe import CollectionStats
from sievedb_server.core.query import AllowedSet, QueryOutcome, resolve_filter, run_query
from sievedb_server.core.rwlock import RWLock
from sievedb_server.core.types import (
    Attributes,
    CollectionInfo,
    CollectionSpec,
    FieldSpec,
    Hit,
    Metric,
    Plan,
    PlanStage,
    Point,
    PointId,
    ScrollPage,
    SearchParams,
    SearchResult,
)
from sievedb_server.errors import (
    CollectionNotFound,
    CorruptData,
    InvalidArgument,
    PointNotFound,
)
from sievedb_server.filters.model import Filter
from sievedb_server.filters.planner import DEFAULT_PLANNER, PlannerConfig
from sievedb_server.filters.reference import matches
from sievedb_server.index import native_scan
from sievedb_server.index.attributes import AttributeIndex, StagedChanges, bitmap_of
from sievedb_server.index.exact import topk_among
from sievedb_server.index.hnsw import HnswIndex
from sievedb_server.index.idmap import LabelIds
from sievedb_server.index.vectors import VectorArray
from sievedb_server.storage import layout, serde
from sievedb_server.storage.store import CollectionStore, full_errors, raise_if_full

__all__ = ["Collection"]

log = logging.getLogger(__name__)

APPLY_CHUNK = 1024  # rows inserted into the graph per index-lock hold
THREADS = max(1, os.cpu_count() or 1)
# The background indexer holds the index write lock (hnswlib cannot search while inserting)
# for about INDEX_BATCH_S per batch: the batch size follows the measured insertion rate, so
# a search waits ~0.1 s whatever the dimension, and add_items still keeps every core busy.
INDEX_BATCH = 512 * THREADS  # first batch
INDEX_BATCH_MIN, INDEX_BATCH_MAX = 32 * THREADS, 8192 * THREADS
INDEX_BATCH_S = 0.1
INDEXER_YIELD_S = 0.001
MERGE_BLOCK = 32_768  # pending rows scored per step when merging them into a graph answer
# On open, replay or rebuild at most this many points into the graph before serving; more are
# left pending for the background indexer (the collection is searchable meanwhile).
SYNC_GRAPH_MAX = 20_000


class Collection:
    def __init__(
        self,
        folder: Path,
        *,
        sync: bool = True,
        spec: CollectionSpec | None = None,
        planner: PlannerConfig = DEFAULT_PLANNER,
        store_max_bytes: int = 0,
    ):
        """Open the collection in `folder`; with `spec`, create it there first.

        `store_max_bytes` > 0 caps the LMDB store (writes beyond it fail with StoreFull).
        """
        self.folder = folder
        self.planner = planner
        self.store = CollectionStore(folder / "store", sync=sync, max_bytes=store_max_bytes)
        if spec is not None:
            txn = self.store.write()
            try:
                self.store.init_meta(txn, spec)
            except BaseException as exc:
                txn.abort()
                raise_if_full(exc)
                raise
            self.store.commit(txn)
        with self.store.read() as txn:
            stored = self.store.spec(txn)
            if stored is None:
                raise CorruptData(f"collection folder {folder} has no spec")
            self.spec = stored
            self._watermark = self.store.watermark(txn)
            next_label = self.store.next_label(txn)
        self._write_mutex = threading.RLock()  # re-entered by delete-by-filter
        self._index_lock = RWLock()
        self._users = RWLock()  # pinned() jobs share it; close() takes it alone
        vec_path = folder / "vectors.f32"
        vec_file_ok = vec_path.exists() and vec_path.stat().st_size >= next_label * self.dim * 4
        self.vectors = VectorArray(
            vec_path, self.dim, next_label, keep_sqnorms=self.metric is Metric.L2
        )
        self.graph = HnswIndex(folder, self.dim, self.metric, self.spec.hnsw)
        self.in_graph = np.zeros(self.vectors.capacity, dtype=bool)
        self.ids = LabelIds(self.vectors.capacity)
        self.attr_index = AttributeIndex(self.spec.schema)
        with self.store.read() as txn:
            self.attr_index.load(txn, self.store.db["postings"], self.store.db["numeric"])
        self.live_bitmap = BitMap()
        self.pending = BitMap()  # live labels whose current vector is not in the graph yet
        self._index_watermark = 0
        self._closed = False
        self._recover(vec_file_ok)
        self._wake_indexer = threading.Event()
        self._stop_indexer = threading.Event()
        self._indexer = threading.Thread(
            target=self._index_loop, daemon=True, name=f"sievedb-indexer-{self.name}"
        )
        self._indexer.start()
        if self.pending:
            self._wake_indexer.set()

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
            pairs = list(self.store.iter_labels(txn))
            live_labels = np.fromiter((label for label, _ in pairs), dtype=np.int64,
                                      count=len(pairs))
            self.vectors.live[live_labels] = True
            self.ids.set(pairs)
            del pairs
            self.live_bitmap = bitmap_of(live_labels)
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
        hi = self.vectors.capacity
        self.pending = bitmap_of(np.flatnonzero(self.vectors.live[:hi] & ~self.in_graph[:hi]))
        if self.pending:
            how += f", {len(self.pending)} left to the background indexer"
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
        to_graph = self._live_count <= SYNC_GRAPH_MAX  # else the indexer builds it in the background
        with self.store.read() as txn:
            for labels, vecs in self.store.iter_vectors(txn, self.dim):
                self._grow(int(labels.max()) + 1)
                self.vectors.write(labels, vecs)
                if to_graph:
                    self.graph.add(labels, vecs, num_threads=THREADS)
                    self.in_graph[labels] = True
        self._index_watermark = 0  # nothing saved reflects this graph yet

    def rebuild_derived(self) -> None:
        """Rebuild the live set, id map, vector file and HNSW graph from LMDB, then save them."""
        with self._write_mutex:
            with self._index_lock.write():
                self.vectors.live[:] = False
                self.in_graph[:] = False
                self._recover(vec_file_ok=False)
            self._wake_indexer.set()
            self.wait_indexed()
            self.checkpoint()

    def rebuild_attribute_indexes(self) -> None:
        """Rewrite the posting lists and numeric indexes from the stored attributes."""
        with self._write_mutex:
            fresh = AttributeIndex(self.spec.schema)
            staged = StagedChanges()
            txn = self.store.write()
            try:
                txn.drop(self.store.db["postings"], delete=False)
                txn.drop(self.store.db["numeric"], delete=False)
                for label, _ in list(self.store.iter_labels(txn)):
                    fresh.stage(staged, label, None, self.store.attributes(txn, label))
                fresh.write(staged, txn, self.store.db["postings"], self.store.db["numeric"])
            except BaseException as exc:
                txn.abort()
                raise_if_full(exc)
                raise
            with self._index_lock.write():
                self.store.commit(txn)
                index = AttributeIndex(self.spec.schema)
                with self.store.read() as rtxn:
                    index.load(rtxn, self.store.db["postings"], self.store.db["numeric"])
                self.attr_index = index

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
            # Points already in the graph get their current vector now; new ones too unless
            # there are many, which the background indexer then inserts (see _recover).
            sync = self.in_graph[alive] | (alive.size <= SYNC_GRAPH_MAX)
            self.graph.add(alive[sync], vecs[sync], num_threads=THREADS)
            self.in_graph[alive[sync]] = True
        self.graph.mark_deleted(dead)
        self.in_graph[dead] = False

    def _grow(self, needed: int) -> None:
        """Make room for labels < needed in every label-indexed structure (write lock held)."""
        if self.vectors.ensure_capacity(needed):
            grown = np.zeros(self.vectors.capacity, dtype=bool)
            grown[: self.in_graph.shape[0]] = self.in_graph
            self.in_graph = grown
            self.ids.grow(self.vectors.capacity)
        self.graph.ensure_capacity(needed)

    # -- writes ----------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[PointId],
        vectors: np.ndarray,
        attributes: Sequence[Attributes | None] | None,
    ) -> int:
        """Insert or replace points and index them before returning; returns the watermark.

        Within the batch the last occurrence of an id wins.
        """
        with self._write_mutex:
            seq, labels = self._commit_points(ids, vectors, attributes)
            self._index_now(labels)
        return seq

    def _index_now(self, labels: np.ndarray) -> None:
        """Insert `labels` (if still pending) into the graph, a sub-batch per lock hold."""
        for start in range(0, len(labels), APPLY_CHUNK):
            chunk = bitmap_of(labels[start : start + APPLY_CHUNK])
            with self._index_lock.write():
                todo = np.frombuffer((chunk & self.pending).to_array(), dtype=np.uint32)
                if todo.size == 0:
                    continue
                todo = todo.astype(np.int64)
                self.graph.add(todo, np.ascontiguousarray(self.vectors.data[todo]),
                               num_threads=THREADS)
                self.in_graph[todo] = True
                self.pending.difference_update(bitmap_of(todo))

    def bulk_upsert(
        self,
        ids: Sequence[PointId],
        vectors: np.ndarray,
        attributes: Sequence[Attributes | None] | None,
        *,
        load_id: str = "",
        load_rows: int = 0,
    ) -> int:
        """Like `upsert` (one durable transaction), but graph insertion is left to the indexer.

        With `load_id`, the same transaction records that the load has committed `load_rows`
        source rows, so an interrupted load resumes exactly after its last durable chunk.
        Within the chunk the last occurrence of an id wins. Returns the watermark.
        """
        with self._write_mutex:
            seq, _ = self._commit_points(
                ids, vectors, attributes, load_id=load_id, load_rows=load_rows
            )
        self._wake_indexer.set()
        return seq

    def _commit_points(
        self,
        ids: Sequence[PointId],
        vectors: np.ndarray,
        attributes: Sequence[Attributes | None] | None,
        *,
        load_id: str = "",
        load_rows: int = 0,
    ) -> tuple[int, np.ndarray]:
        """One LMDB transaction for the batch, committed and mirrored in memory atomically.

        The commit and the in-memory mirror (ids, vectors, live set, postings) happen under
        the index write lock, so a reader never sees LMDB and memory disagree. Labels not yet
        in the graph become `pending` (searches merge them exactly). Caller holds the write
        mutex. Returns (watermark, labels of the batch).
        """
        if self.metric is Metric.COSINE:
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        last = {pid: i for i, pid in enumerate(ids)}
        if len(last) != len(ids):
            keep = np.fromiter(sorted(last.values()), dtype=np.int64, count=len(last))
            vectors = vectors[keep]
            ids = [ids[i] for i in keep.tolist()]
            if attributes is not None:
                attributes = [attributes[i] for i in keep.tolist()]
        n = len(ids)
        labels = np.empty(n, dtype=np.int64)
        new = np.zeros(n, dtype=bool)
        created: list[tuple[int, PointId]] = []
        indexed = bool(self.attr_index.fields)
        txn = self.store.write()
        try:
            seq = self.store.watermark(txn) + 1
            next_label = self.store.next_label(txn)
            staged = StagedChanges()
            packed: list[bytes | None] = []
            id_keys = [layout.encode_point_id(pid) for pid in ids]
            for i, pid in enumerate(ids):
                label = self.store.label_of_key(txn, id_keys[i])
                attrs = attributes[i] if attributes is not None else None
                if label is None:
                    label, next_label = next_label, next_label + 1
                    new[i] = True
                    created.append((label, pid))
                if indexed:
                    old = None if new[i] else self.store.attributes(txn, label)
                    self.attr_index.stage(staged, label, old, attrs)
                packed.append(serde.pack_attributes(attrs) if attrs else None)
                labels[i] = label
            self.store.put_points_bulk(txn, labels, id_keys, vectors, packed, new)
            self.attr_index.write(staged, txn, self.store.db["postings"],
                                  self.store.db["numeric"])
            self.store.append_log(txn, seq, labels)
            self.store.set_counters(txn, seq, next_label)
            if load_id:
                self.store.set_load_rows(txn, load_id, load_rows)
            self.store.check_room(txn)
            deadline.checkpoint("commit")  # past the deadline: abort, nothing is written
        except BaseException as exc:
            txn.abort()
            raise_if_full(exc)
            raise
        with self._index_lock.write():
            # Room in the derived structures first (the vector file reserves disk blocks):
            # if that fails the batch is refused before LMDB commits and nothing changes.
            try:
                self._grow(int(labels.max()) + 1)
            except BaseException as exc:
                txn.abort()
                raise_if_full(exc, "the vector file")
                raise
            self.store.commit(txn)
            self._watermark = seq
            self.ids.set(created)
            self.vectors.write(labels, vectors)
            # Already in the graph: update it now (keeps "in graph => current vector").
            sync = self.in_graph[labels]
            if sync.any():
                self.graph.add(labels[sync], vectors[sync], num_threads=THREADS)
            self.pending |= bitmap_of(labels[~sync])
            self._live_count += len(created)
            self.live_bitmap |= bitmap_of(labels)
            self.attr_index.apply(staged)
        return seq, labels

    def load_rows(self, load_id: str) -> int | None:
        """Source rows committed by the resumable bulk load `load_id` (None: never seen)."""
        with self.store.read() as txn:
            return self.store.load_rows(txn, load_id)

    def _index_loop(self) -> None:
        """Background indexer: move pending labels into the graph, ~INDEX_BATCH_S per batch."""
        size = INDEX_BATCH
        while True:
            self._wake_indexer.wait()
            if self._stop_indexer.is_set():
                return
            try:
                with self._index_lock.write():
                    if self._closed or not self.pending:
                        self._wake_indexer.clear()
                        continue
                    t0 = time.perf_counter()
                    batch = np.asarray(self.pending[:size].to_array(), dtype=np.int64)
                    vecs = np.ascontiguousarray(self.vectors.data[batch])
                    self.graph.ensure_capacity(
                        max(int(batch[-1]) + 1, self.graph.capacity,
                            int(self.graph.index.element_count) + len(self.pending))
                    )
                    self.graph.add(batch, vecs, num_threads=THREADS)
                    self.in_graph[batch] = True
                    self.pending.difference_update(bitmap_of(batch))
                    rate = batch.size / max(time.perf_counter() - t0, 1e-6)
                    size = int(min(max(rate * INDEX_BATCH_S, INDEX_BATCH_MIN), INDEX_BATCH_MAX))
            except Exception:  # keep serving exactly; the next open retries from LMDB
                log.exception("background indexing of %s failed", self.name)
                self._wake_indexer.clear()
            # Let a waiting writer (the next bulk chunk's commit) or reader take the lock
            # before the next batch: without releasing the GIL here this thread would win the
            # lock back at once and starve them until the graph has caught up.
            time.sleep(INDEXER_YIELD_S)

    @property
    def pending_count(self) -> int:
        return len(self.pending)

    def wait_indexed(self, timeout: float | None = None) -> bool:
        """Block until no label is pending (True) or `timeout` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def merge_pending(
        self, query: np.ndarray, k: int, labels: np.ndarray, scores: np.ndarray,
        allowed: AllowedSet | None,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Merge a graph answer for one query with the exact top-k of the pending labels.

        `allowed` is the query's allowed set (None = unfiltered). The caller holds the index
        read lock, so `pending` and the graph agree. Returns (labels, scores, |pending scanned|).
        """
        cand = self.pending if allowed is None else self.pending & allowed.bitmap
        if allowed is not None and allowed.check is not None and cand:
            check = allowed.check
            cand = BitMap(lb for lb in cand if check(lb))
        if not cand or k == 0:
            return labels, scores, 0
        extra = np.asarray(cand.to_array(), dtype=np.int64)
        best_labels = np.asarray(labels, dtype=np.int64)
        best_scores = np.asarray(scores, dtype=np.float32)
        # In blocks: a gather of every pending row (hundreds of MB mid-load) would be a copy.
        for start in range(0, extra.size, MERGE_BLOCK):
            block = extra[start : start + MERGE_BLOCK]
            found, top = self.exact_among(query[None, :], block, min(k, block.size))
            all_labels = np.concatenate([best_labels, found[0]])
            all_scores = np.concatenate([best_scores, top[0]])
            key = -all_scores if self.metric.higher_is_closer else all_scores
            order = np.lexsort((all_labels, key))[:k]
            best_labels, best_scores = all_labels[order], all_scores[order]
        return best_labels, best_scores, int(extra.size)

    def delete(self, ids: Sequence[PointId]) -> tuple[int, int]:
        """Delete the points that exist; returns (deleted, watermark)."""
        with self._write_mutex:
            txn = self.store.write()
            try:
                labels = []
                staged = StagedChanges()
                for n, pid in enumerate(dict.fromkeys(ids)):
                    if n % 1024 == 1023:
                        deadline.checkpoint("delete")
                    label = self.store.label_of(txn, pid)
                    if label is not None:
                        if self.attr_index.fields:
                            old = self.store.attributes(txn, label)
                            self.attr_index.stage(staged, label, old, None)
                        self.store.delete_point(txn, label, pid)
                        labels.append(label)
                if not labels:
                    txn.abort()
                    return 0, self._watermark
                seq = self.store.watermark(txn) + 1
                arr = np.asarray(labels, dtype=np.int64)
                self.attr_index.write(staged, txn, self.store.db["postings"],
                                      self.store.db["numeric"])
                self.store.append_log(txn, seq, arr)
                self.store.set_counters(txn, seq, self.store.next_label(txn))
                deadline.checkpoint("commit")
            except BaseException as exc:
                txn.abort()
                raise_if_full(exc)
                raise
            with self._index_lock.write():
                self.store.commit(txn)
                self._watermark = seq
                self.vectors.kill(arr)
                self.graph.mark_deleted(arr)
                self.in_graph[arr] = False
                self._live_count -= len(arr)
                self.live_bitmap.difference_update(bitmap_of(arr))
                self.pending.difference_update(bitmap_of(arr))
                self.attr_index.apply(staged)
        return len(arr), seq

    # -- reads -----------------------------------------------------------------------------

    def matching_labels(self, flt: Filter | None) -> BitMap:
        """Exactly the live labels that pass `flt` (a snapshot copy: the resolver may hand out
        an index's own bitmap, which writers change in place once the lock is released)."""
        with self._index_lock.read():
            if flt is None or flt.is_empty():
                return BitMap(self.live_bitmap)
            return BitMap(resolve_filter(self, flt, force_exact=True).bitmap)

    def count(self, flt: Filter | None = None) -> int:
        if flt is None or flt.is_empty():
            return self._live_count
        with self._index_lock.read():  # a range is counted without building its bitmap
            return len(resolve_filter(self, flt, force_exact=True))

    def delete_matching(self, flt: Filter) -> tuple[int, int]:
        with self._write_mutex:
            labels = self.matching_labels(flt)
            with self.store.read() as txn:
                ids = [self.store.id_of(txn, label) for label in labels]
            return self.delete([pid for pid in ids if pid is not None])

    def scroll(
        self,
        flt: Filter | None,
        limit: int,
        cursor: bytes,
        *,
        with_vectors: bool,
        with_attributes: bool,
    ) -> ScrollPage:
        """Points in label (arrival) order from `cursor`; the cursor is the next label."""
        start = layout.decode_label(cursor) if cursor else 0
        labels = np.asarray(self.matching_labels(flt).to_array(), dtype=np.int64)
        begin = int(np.searchsorted(labels, start))
        page = labels[begin : begin + limit]
        more = begin + limit < len(labels)
        points: list[Point] = []
        with self.store.read() as txn:
            for n, label in enumerate(page.tolist()):
                if n % 256 == 255:
                    deadline.checkpoint("scroll")
                pid = self.store.id_of(txn, label)
                if pid is None:
                    continue
                vec = None
                if with_vectors:
                    raw = self.store.vector(txn, label)
                    vec = None if raw is None else np.frombuffer(raw, dtype="<f4").copy()
                attrs = (self.store.attributes(txn, label) or {}) if with_attributes else None
                points.append(Point(pid, vec, attrs))
        next_cursor = layout.encode_label(int(labels[begin + limit])) if more else b""
        return ScrollPage(points, next_cursor)

    def update_schema(
        self, fields: Sequence[FieldSpec], validate: Callable[[tuple[FieldSpec, ...], dict], dict]
    ) -> None:
        """Declare new fields or start indexing declared ones; backfills indexes in one txn.

        Existing attributes must satisfy the new declarations (`validate` raises otherwise),
        and nothing is written unless all do.
        """
        with self._write_mutex:
            current = {f.name: f for f in self.spec.schema}
            for f in fields:
                old = current.get(f.name)
                if old is not None and old.type is not f.type:
                    raise InvalidArgument(
                        f"field {f.name!r} is declared as {old.type.value}; "
                        f"it cannot become {f.type.value}"
                    )
                current[f.name] = FieldSpec(f.name, f.type, f.indexed or (old is not None and old.indexed))
            schema = tuple(current.values())
            newly = [f for f in schema if f.indexed and not (
                f.name in self.attr_index.fields)]
            spec = CollectionSpec(self.spec.name, self.spec.dim, self.spec.metric,
                                  self.spec.hnsw, schema).validate()
            fresh = AttributeIndex(newly)
            staged = StagedChanges()
            txn = self.store.write()
            try:
                with txn.cursor(db=self.store.db["attrs"]) as cur:
                    for key, _ in cur:
                        label = layout.decode_label(bytes(key))
                        attrs = self.store.attributes(txn, label) or {}
                        validate(schema, attrs)
                        fresh.stage(staged, label, None, attrs)
                fresh.write(staged, txn, self.store.db["postings"], self.store.db["numeric"])
                self.store.put_spec(txn, spec)
                self.store.check_room(txn)
            except BaseException as exc:
                txn.abort()
                raise_if_full(exc)
                raise
            self.store.commit(txn)
            index = AttributeIndex(schema)
            with self.store.read() as rtxn:
                index.load(rtxn, self.store.db["postings"], self.store.db["numeric"])
            with self._index_lock.write():
                self.spec = spec
                self.attr_index = index

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

    def search_batch(
        self,
        queries: np.ndarray,
        params: SearchParams,
        filters: Sequence[Filter | None] | None = None,
        *,
        on_plan: Callable[[Plan, bool], None] | None = None,
    ) -> list[SearchResult]:
        """k-NN for each row of `queries`, each with its own filter or None.

        `queries` are validated float32, C-contiguous, and normalised for cosine
        (`vector_checks.checked_queries`). `on_plan(plan, filtered)` is called per query once
        the lock is released (metrics).
        """
        flts = [
            None if f is None or f.is_empty() else f
            for f in (filters or [None] * len(queries))
        ]
        with self._index_lock.read():
            outcomes = self._batched_unfiltered(queries, params) if not any(flts) else None
            allowed_sets: list[AllowedSet | None] = [None] * len(queries)
            if outcomes is None:
                # A filter shared by a batch is one object: resolve it once (keyed by identity,
                # which also spares hashing a deep filter tree per query).
                resolved: dict[int, AllowedSet] = {}
                outcomes = []
                allowed_sets = []
                for q, flt in zip(queries, flts):
                    deadline.checkpoint("search batch")
                    allowed = None
                    if flt is not None:
                        allowed = resolved.get(id(flt))
                        if allowed is None:
                            allowed = resolve_filter(self, flt, force_exact=False)
                            resolved[id(flt)] = allowed
                    outcomes.append(run_query(self, q, params, allowed))
                    allowed_sets.append(allowed)
            results = self._answers(queries, params, outcomes, allowed_sets)
        if on_plan is not None:
            for outcome, flt in zip(outcomes, flts):
                on_plan(outcome.plan, flt is not None)
        return results

    def search_one(
        self,
        query: np.ndarray,
        params: SearchParams,
        flt: Filter | None = None,
        *,
        on_plan: Callable[[Plan, bool], None] | None = None,
    ) -> SearchResult:
        """`search_batch` for one query (a checked 1-D row), without a batch's lists."""
        if flt is not None and flt.is_empty():
            flt = None
        with self._index_lock.read():
            allowed = None if flt is None else resolve_filter(self, flt, force_exact=False)
            outcome = run_query(self, query, params, allowed)
            if (self.pending or params.with_attributes or params.with_vectors
                    or params.explain):
                result = self._answers(query[None, :], params, [outcome], [allowed])[0]
            else:  # ids and scores only, nothing to merge or time: the common case
                result = SearchResult(self._plain_hits(outcome.labels, outcome.scores))
        if on_plan is not None:
            on_plan(outcome.plan, flt is not None)
        return result

    def _answers(
        self,
        queries: np.ndarray,
        params: SearchParams,
        outcomes: list[QueryOutcome],
        allowed_sets: Sequence[AllowedSet | None],
    ) -> list[SearchResult]:
        """Planned outcomes → results: pending points merged, hits materialised, the fetch
        stage timed (caller holds the read lock: LMDB's snapshot then agrees with memory)."""
        if self.pending:
            self._merge_lagging(queries, params, outcomes, allowed_sets)
        vecs = (
            [self.vectors.data[o.labels].copy() for o in outcomes]
            if params.with_vectors
            else None
        )
        t0 = time.perf_counter_ns()
        results = self._materialise(
            [o.labels for o in outcomes], [o.scores for o in outcomes], vecs, params
        )
        if not params.explain:
            return results
        fetch_ns = (time.perf_counter_ns() - t0) // max(len(outcomes), 1)
        for outcome in outcomes:
            outcome.plan.stages.append(PlanStage("fetch", fetch_ns))
        return [SearchResult(r.hits, o.plan) for r, o in zip(results, outcomes)]

    def _merge_lagging(
        self,
        queries: np.ndarray,
        params: SearchParams,
        outcomes: list[QueryOutcome],
        allowed_sets: Sequence[AllowedSet | None],
    ) -> None:
        """Graph answers miss pending labels: merge each with an exact scan of those allowed.

        Exact strategies already scanned every allowed live label (pending ones included).
        """
        for i, outcome in enumerate(outcomes):
            deadline.checkpoint("search batch")
            strategy = outcome.plan.strategy
            if strategy == "empty" or strategy.endswith("exact"):
                continue
            t0 = time.perf_counter_ns()
            k = min(params.k, outcome.plan.allowed)
            labels, scores, scanned = self.merge_pending(
                queries[i], k, outcome.labels, outcome.scores, allowed_sets[i]
            )
            outcome.labels, outcome.scores = labels, scores
            outcome.plan.stages.append(PlanStage("pending", time.perf_counter_ns() - t0))
            note = f"graph lags: merged an exact scan of {scanned} not-yet-indexed points"
            outcome.plan.detail = f"{outcome.plan.detail}; {note}" if outcome.plan.detail else note

    def _batched_unfiltered(
        self, queries: np.ndarray, params: SearchParams
    ) -> list[QueryOutcome] | None:
        """All queries in one multi-threaded hnswlib call, when the plan is plain HNSW."""
        total = self._live_count
        k = min(params.k, total)
        if (
            len(queries) == 1
            or params.exact
            or total <= self.spec.hnsw.full_scan_threshold
            or k == 0
        ):
            return None
        ef = max(params.ef or self.spec.hnsw.ef_search, k)
        t0 = time.perf_counter_ns()
        try:
            labels, dists = self.graph.search(queries, k, ef, num_threads=THREADS)
        except RuntimeError:
            return None
        scores = dists if self.metric is Metric.L2 else 1.0 - dists
        per_query = (time.perf_counter_ns() - t0) // len(queries)
        return [
            QueryOutcome(
                labels[i],
                scores[i],
                Plan(
                    "hnsw", allowed=total, total=total, ef=ef,
                    stages=[PlanStage("search", per_query)], detail="batched",
                ),
            )
            for i in range(len(queries))
        ]

    @property
    def live_count(self) -> int:
        return self._live_count

    def live_labels(self) -> np.ndarray:
        return np.flatnonzero(self.vectors.live[: self.vectors.capacity])

    def labels_of_ids(self, ids: frozenset[PointId]) -> BitMap:
        with self.store.read() as txn:
            found = (self.store.label_of(txn, pid) for pid in ids)
            return BitMap(label for label in found if label is not None)

    def make_checker(self, flt: Filter) -> Callable[[int], bool]:
        """Evaluate `flt` on one label with the reference evaluator (memoised)."""
        memo: dict[int, bool] = {}

        def check(label: int) -> bool:
            hit = memo.get(label)
            if hit is None:
                with self.store.read() as txn:
                    pid = self.store.id_of(txn, label)
                    hit = pid is not None and matches(flt, pid, self.store.attributes(txn, label))
                memo[label] = hit
            return hit

        return check

    def exact_among(
        self, queries: np.ndarray, labels: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of each query among `labels` (sorted, live); caller holds the read lock."""
        if native_scan.AVAILABLE:  # scored in place: no gather, one call
            vecs = self.vectors
            if len(labels) >= native_scan.SQ8_MIN_ROWS:  # codes first, then the few that matter
                found, scores, _ = native_scan.topk_among_sq8(
                    vecs.data, vecs.codes, vecs.code_meta, labels, queries, k,
                    l2=self.metric is Metric.L2,
                )
                return found, scores
            return native_scan.topk_among(vecs.data, labels, queries, k,
                                          l2=self.metric is Metric.L2)
        return topk_among(self.vectors.data, labels, queries, k, self.metric, self.vectors.sqnorms)

    def _materialise(
        self,
        labels: Sequence[np.ndarray],
        scores: Sequence[np.ndarray],
        vecs: Sequence[np.ndarray] | None,
        params: SearchParams,
    ) -> list[SearchResult]:
        results: list[SearchResult] = []
        txn = self.store.read() if params.with_attributes else None
        try:
            plain = txn is None and vecs is None
            for qi in range(len(labels)):
                if plain:
                    results.append(SearchResult(self._plain_hits(labels[qi], scores[qi])))
                    continue
                row = np.ascontiguousarray(labels[qi], dtype=np.int64)
                row_scores = np.asarray(scores[qi], dtype=np.float32).tolist()
                alive = self.vectors.live[row]
                pids = self.ids.lookup(row)
                hits: list[Hit] = []
                for j, label in enumerate(row.tolist()):
                    if not alive[j]:
                        continue  # deleted after the index answered
                    attrs = None
                    if txn is not None:
                        attrs = self.store.attributes(txn, label) or {}
                    vec = vecs[qi][j] if vecs is not None else None
                    hits.append(Hit(pids[j], row_scores[j], attrs, vec))
                results.append(SearchResult(hits))
        finally:
            if txn is not None:
                txn.abort()
        return results

    def _plain_hits(self, labels: np.ndarray, scores: np.ndarray) -> list[Hit]:
        """Hits with ids and scores only; a label deleted after the index answered is
        dropped (caller holds the read lock)."""
        row = np.ascontiguousarray(labels, dtype=np.int64)
        row_scores = np.asarray(scores, dtype=np.float32).tolist()
        if native_scan.AVAILABLE:  # ids, if all numeric and live: one pass
            ids = native_scan.numeric_ids(row, self.ids.num, self.ids.is_num, self.vectors.live)
            if ids is not None:
                return list(map(Hit, ids, row_scores))
        alive = self.vectors.live[row]
        pids = self.ids.lookup(row)
        if alive.all():
            return list(map(Hit, pids, row_scores))
        return [Hit(pid, score) for pid, score, ok in zip(pids, row_scores, alive.tolist()) if ok]

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

    def stats(self) -> CollectionStats:
        """Sizes for monitoring (a scrape): O(capacity) numpy work under the read lock."""
        with self._index_lock.read():
            hi = self.vectors.capacity
            indexed = int(np.count_nonzero(self.in_graph[:hi] & self.vectors.live[:hi]))
            graph_entries = int(self.graph.index.element_count)
            points, pending = self._live_count, len(self.pending)
        return CollectionStats(
            name=self.name,
            points=points,
            indexed=indexed,
            pending=pending,
            graph_deleted=max(graph_entries - indexed, 0),
            disk_bytes=self.disk_bytes(),
        )

    def disk_bytes(self) -> int:
        files = [p for p in self.folder.iterdir() if p.is_file()]
        return self.store.disk_bytes() + sum(p.stat().st_size for p in files)

    @property
    def dirty(self) -> bool:
        return self._watermark != self._index_watermark

    def checkpoint(self, *, skip_while_indexing: bool = False) -> bool:
        """Save the graph and vector file stamped with the watermark; trim the log. True if saved.

        `skip_while_indexing` (the periodic checkpointer) does nothing while labels are pending:
        saving a large, still-growing graph every interval would stall a bulk load for little
        gain, since the log (kept until the next checkpoint) already makes every chunk durable.
        """
        if skip_while_indexing and self.pending:
            return False
        with self._write_mutex:
            if self._closed or not self.dirty:
                return False
            watermark = self._watermark
            with self._index_lock.read(), full_errors("the disk"):
                # On failure the previous graph and stamp stay in place (see HnswIndex.save).
                self.vectors.flush()
                self.graph.save(watermark)
            txn = self.store.write()
            try:
                self.store.truncate_log(txn, watermark)
            except BaseException as exc:
                txn.abort()
                raise_if_full(exc)
                raise
            self.store.commit(txn)
            self._index_watermark = watermark
            return True

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Keep the LMDB environment open while a long job (a snapshot's copy) reads it
        outside the index locks: `close()` (a drop, a shutdown) waits for it to finish."""
        with self._users.read():
            if self._closed:
                raise CollectionNotFound(f"collection {self.name!r} was dropped or closed")
            yield

    def close(self, *, checkpoint: bool = True) -> None:
        self._stop_indexer.set()
        self._wake_indexer.set()
        if self._indexer is not threading.current_thread():
            self._indexer.join()
        if checkpoint:
            try:
                self.checkpoint()
            except Exception:  # e.g. disk full: LMDB holds every write; the next open replays
                log.exception("final checkpoint of %s failed; closing without it", self.name)
        with self._users.write(), self._write_mutex, self._index_lock.write():
            if self._closed:
                return
            self._closed = True
            self.vectors.close()
            self.store.close()
