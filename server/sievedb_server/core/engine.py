"""The in-process engine: the whole sievedb behaviour without gRPC.

`Engine` owns the collections under `<data_dir>/collections/`, validates requests against
them, and runs a background checkpointer that saves dirty HNSW graphs (bounding replay time
after a crash). The gRPC servicer is a thin translation onto these methods, and tests drive
both and compare (congruence). All methods are thread-safe and raise `sievedb_server.errors`.

Requests are bounded by `self.limits` (`sievedb_server.limits`); long work stops at
`deadline.checkpoint`s once the calling RPC's deadline passed or it was cancelled.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sievedb_server.core import deadline
from sievedb_server.core.aliases import AliasTable
from sievedb_server.core.collection import Collection
from sievedb_server.core.imports import Importer, ImportOperation, ImportSource
from sievedb_server.core.models import ModelService, prepare_queries, prepare_writes
from sievedb_server.core.observe import CollectionStats, EngineObserver
from sievedb_server.core.types import (
    Attributes,
    CollectionInfo,
    CollectionSpec,
    FieldSpec,
    FieldType,
    Metric,
    Plan,
    Point,
    PointId,
    ScrollPage,
    SearchParams,
    SearchResult,
    validate_collection_name,
    validate_point_id,
)
from sievedb_server.core.vector_checks import as_matrix, check_rows, checked_queries
from sievedb_server.errors import (
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    FailedPrecondition,
    InvalidArgument,
    InvalidVector,
    NotFound,
    RequestTooLarge,
    ShuttingDown,
)
from sievedb_server.filters.model import Filter, check_limits, measure
from sievedb_server.filters.planner import DEFAULT_PLANNER, PlannerConfig
from sievedb_server.filters.schema import (
    field_types,
    validate_attributes,
    validate_filter,
)
from sievedb_server.index import native_filter
from sievedb_server.limits import DEFAULT_LIMITS, Limits

__all__ = ["Engine"]

log = logging.getLogger(__name__)

MAX_BATCH = DEFAULT_LIMITS.max_batch_points  # the defaults, under their old names
LOAD_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_K = DEFAULT_LIMITS.max_k
_CHECK_EVERY = 1024  # rows validated between deadline checkpoints


class Engine:
    def __init__(
        self,
        data_dir: Path | str,
        *,
        sync: bool = True,
        checkpoint_interval_s: float = 30.0,
        planner: PlannerConfig = DEFAULT_PLANNER,
        store_max_bytes: int = 0,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        """`store_max_bytes` > 0 caps each collection's LMDB store (see `storage.store`)."""
        self.data_dir = Path(data_dir)
        self.store_max_bytes = store_max_bytes
        self.planner = planner
        self.limits = limits
        self.root = self.data_dir / "collections"
        self.root.mkdir(parents=True, exist_ok=True)
        native_filter.warn_once_if_off(log)
        self.sync = sync
        self._lock = threading.Lock()
        self._collections: dict[str, Collection] = {}
        self._closed = False
        self._observers: tuple[EngineObserver, ...] = ()
        # Per collection, its schema as name → type for the filter check of every request,
        # with the spec it came from (a schema extension replaces the spec).
        self._field_types: dict[str, tuple[CollectionSpec, dict[str, FieldType]]] = {}
        self.aliases = AliasTable(self.data_dir, sync=sync)
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith("."):
                shutil.rmtree(folder, ignore_errors=True)  # a drop or create that was cut short
                continue
            if folder.is_dir() and (folder / "store").exists():
                self._collections[folder.name] = Collection(
                    folder, sync=sync, planner=planner, store_max_bytes=store_max_bytes
                )
        self.imports = Importer(self)
        self.models = ModelService(self)
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, args=(checkpoint_interval_s,), daemon=True,
            name="sievedb-checkpointer",
        )
        self._checkpointer.start()

    # -- observers -------------------------------------------------------------------------

    def add_observer(self, observer: EngineObserver) -> None:
        """Report plans and bulk-load rows to `observer` (see `core/observe.py`)."""
        with self._lock:
            self._observers = (*self._observers, observer)

    def remove_observer(self, observer: EngineObserver) -> None:
        with self._lock:
            self._observers = tuple(o for o in self._observers if o is not observer)

    def stats(self) -> list[CollectionStats]:
        """Sizes of every collection, for monitoring (computed now, not maintained)."""
        with self._lock:
            colls = sorted(self._collections.values(), key=lambda c: c.name)
        return [c.stats() for c in colls]

    # -- collections -----------------------------------------------------------------------

    def _get(self, name: str) -> Collection:
        if self._closed:
            raise ShuttingDown("the engine is shutting down")
        coll = self._collections.get(name)  # a collection's own name (no alias shadows one)
        if coll is not None:
            return coll
        validate_collection_name(name)
        coll = self._collections.get(self.aliases.resolve(name))
        if coll is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return coll

    def collection(self, name: str) -> Collection:
        """The `Collection` object itself, for maintenance (verify, repair) and tests."""
        return self._get(name)

    def create_collection(self, spec: CollectionSpec) -> CollectionInfo:
        spec.validate(self.limits)
        with self._lock:
            if self._closed:
                raise ShuttingDown("the engine is shutting down")
            if spec.name in self._collections:
                raise CollectionExists(f"collection {spec.name!r} already exists")
            self.limits.check("max_collections", len(self._collections) + 1)
            if self.aliases.resolve(spec.name) != spec.name:
                raise CollectionExists(f"{spec.name!r} is an alias; pick another name")
            # Build in a hidden folder and rename, so a crash never leaves half a collection.
            staging = self.root / f".create-{spec.name}-{uuid.uuid4().hex[:8]}"
            Collection(
                staging, sync=self.sync, spec=spec, store_max_bytes=self.store_max_bytes
            ).close(checkpoint=False)
            final = self.root / spec.name
            staging.rename(final)
            coll = Collection(
                final, sync=self.sync, planner=self.planner,
                store_max_bytes=self.store_max_bytes,
            )
            self._collections[spec.name] = coll
        log.info("created collection %s (dim %d, %s)", spec.name, spec.dim, spec.metric.value)
        return coll.info()

    def describe_collection(self, name: str) -> CollectionInfo:
        return self._get(name).info()

    def list_collections(self) -> list[CollectionInfo]:
        with self._lock:
            colls = sorted(self._collections.values(), key=lambda c: c.name)
        return [c.info() for c in colls]

    def drop_collection(self, name: str, missing_ok: bool = False) -> bool:
        validate_collection_name(name)
        if name in self.aliases.targets():
            raise FailedPrecondition(
                f"collection {name!r} is the target of an alias: re-point or delete it first"
            )
        if self.aliases.resolve(name) != name:  # never drop a collection through an alias
            raise FailedPrecondition(f"{name!r} is an alias: delete it, or drop its target by name")
        with self._lock:
            coll = self._collections.pop(name, None)
            if coll is None:
                if missing_ok:
                    return False
                raise CollectionNotFound(f"collection {name!r} does not exist")
            coll.close(checkpoint=False)
            trash = self.root / f".drop-{name}-{uuid.uuid4().hex[:8]}"
            coll.folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        log.info("dropped collection %s", name)
        return True

    def update_schema(self, name: str, fields: Sequence[FieldSpec]) -> CollectionInfo:
        """Declare new attribute fields or start indexing declared ones (backfilled)."""
        coll = self._get(name)
        if not fields:
            raise InvalidArgument("update_schema needs at least one field")
        coll.update_schema(
            list(fields), lambda schema, attrs: validate_attributes(schema, attrs, self.limits)
        )
        return coll.info()

    def _check_filter(self, coll: Collection, flt: Filter | None) -> Filter | None:
        if flt is None or not (flt.must or flt.should or flt.must_not):  # empty: no filter
            return None
        depth, nodes, longest = measure(flt)
        limits = self.limits
        if (depth > limits.max_filter_depth or nodes > limits.max_filter_nodes
                or longest > limits.max_match_values):
            check_limits(flt, limits)  # raises, naming the limit
        cached = self._field_types.get(coll.name)
        if cached is None or cached[0] is not coll.spec:  # the schema is replaced when extended
            cached = self._field_types[coll.name] = (coll.spec, field_types(coll.spec.schema))
        return validate_filter(cached[1], flt)

    # -- points ----------------------------------------------------------------------------

    def _check_vectors(
        self, coll: Collection, vectors: Any, what: str, row_base: int = 0
    ) -> np.ndarray:
        arr = as_matrix(vectors, coll.dim, coll.name, what)
        limit = "max_batch_queries" if what == "queries" else "max_batch_points"
        self.limits.check(limit, arr.shape[0], f"the number of {what} in the request")
        check_rows(arr, what, cosine=coll.metric is Metric.COSINE, row_base=row_base)
        return arr

    def upsert(
        self,
        name: str,
        ids: Sequence[PointId],
        vectors: np.ndarray,
        attributes: Sequence[Attributes | None] | None = None,
        *,
        model: str = "",
    ) -> int:
        coll = self._get(name)
        arr = self._check_vectors(coll, vectors, "vectors")
        arr, attributes = prepare_writes(coll, model, arr, attributes)
        checked = [validate_point_id(pid) for pid in ids]
        if len(checked) != arr.shape[0]:
            raise InvalidArgument(f"got {len(checked)} ids for {arr.shape[0]} vectors")
        if attributes is not None and len(attributes) not in (0, len(checked)):
            raise InvalidArgument(f"got {len(attributes)} attribute maps for {len(checked)} ids")
        attrs = None
        if attributes:
            schema = coll.spec.schema
            attrs = []
            for i, a in enumerate(attributes):
                if i % _CHECK_EVERY == _CHECK_EVERY - 1:
                    deadline.checkpoint("validating attributes")
                try:
                    attrs.append(validate_attributes(schema, a, self.limits) if a else None)
                except (InvalidArgument, RequestTooLarge) as exc:
                    raise type(exc)(f"point {checked[i]!r}: {exc.message}") from exc
        deadline.checkpoint("before the write")
        return coll.upsert(checked, arr, attrs)

    def bulk_upsert(
        self,
        name: str,
        ids: Sequence[PointId],
        vectors: np.ndarray,
        attributes: Sequence[Attributes | None] | None = None,
        *,
        load_id: str = "",
        offset: int = 0,
        model: str = "",
    ) -> int:
        """One chunk of a bulk load: validated like `upsert`, durable on return, graph deferred.

        `offset` is the source row of the chunk's first point; errors name absolute rows. With
        `load_id`, the chunk must start at or before the rows that load has committed (chunks
        arrive in order), and the load's committed-row count advances in the same transaction.
        """
        coll = self._get(name)
        if load_id and not LOAD_ID_RE.fullmatch(load_id):
            raise InvalidArgument(f"load id {load_id!r} must match {LOAD_ID_RE.pattern}")
        try:
            arr = self._check_vectors(coll, vectors, "vectors", row_base=offset)
            arr, attributes = prepare_writes(coll, model, arr, attributes)
            checked = [validate_point_id(pid) for pid in ids]
            if len(checked) != arr.shape[0]:
                raise InvalidArgument(f"got {len(checked)} ids for {arr.shape[0]} vectors")
            if attributes is not None and len(attributes) not in (0, len(checked)):
                raise InvalidArgument(
                    f"got {len(attributes)} attribute maps for {len(checked)} ids"
                )
            attrs = None
            if attributes:
                schema = coll.spec.schema
                attrs = []
                for i, a in enumerate(attributes):
                    if i % _CHECK_EVERY == _CHECK_EVERY - 1:
                        deadline.checkpoint("validating attributes")
                    try:
                        attrs.append(validate_attributes(schema, a, self.limits) if a else None)
                    except (InvalidArgument, RequestTooLarge) as exc:
                        raise type(exc)(
                            f"row {offset + i} (id {checked[i]!r}): {exc.message}"
                        ) from exc
        except (InvalidArgument, DimensionMismatch, RequestTooLarge) as exc:
            raise type(exc)(f"bulk chunk starting at row {offset}: {exc.message}") from exc
        if load_id:
            done = coll.load_rows(load_id) or 0
            if offset > done:
                raise InvalidArgument(
                    f"load {load_id!r} has committed {done} rows; a chunk at row {offset} "
                    "would leave a gap (resume from the committed row)"
                )
            rows = max(done, offset + len(checked))
        else:
            rows = 0
        deadline.checkpoint("before the write")
        watermark = coll.bulk_upsert(checked, arr, attrs, load_id=load_id, load_rows=rows)
        for observer in self._observers:
            observer.rows_bulk_loaded(coll.name, len(checked))
        return watermark

    def load_rows(self, name: str, load_id: str) -> int | None:
        """Rows the resumable load `load_id` has durably committed (None: unknown load)."""
        return self._get(name).load_rows(load_id)

    def wait_indexed(self, name: str, timeout: float | None = None) -> bool:
        """Block until every stored point of `name` is in its graph (False on timeout)."""
        return self._get(name).wait_indexed(timeout)

    def start_import(
        self, name: str, source: ImportSource, load_id: str = "", batch_size: int = 0
    ) -> ImportOperation:
        """Read `source` (a path on the server) into `name` in the background; see `imports`."""
        if load_id and not LOAD_ID_RE.fullmatch(load_id):
            raise InvalidArgument(f"load id {load_id!r} must match {LOAD_ID_RE.pattern}")
        if batch_size < 0:
            raise InvalidArgument(f"batch_size must be >= 0, got {batch_size}")
        self.limits.check("max_batch_points", batch_size, "the import batch size")
        return self.imports.start(name, source, load_id, batch_size)

    def get_operation(self, op_id: str) -> ImportOperation:
        op = self.imports.get(op_id)
        if op is None:
            raise NotFound(f"no operation {op_id!r} (operations are kept until a restart)")
        return op

    def get(
        self,
        name: str,
        ids: Sequence[PointId],
        *,
        with_vectors: bool = False,
        with_attributes: bool = True,
        allow_missing: bool = False,
    ) -> list[Point]:
        coll = self._get(name)
        checked = [validate_point_id(pid) for pid in ids]
        return coll.get(
            checked,
            with_vectors=with_vectors,
            with_attributes=with_attributes,
            allow_missing=allow_missing,
        )

    def delete(
        self, name: str, ids: Sequence[PointId] = (), filter: Filter | None = None
    ) -> tuple[int, int]:
        coll = self._get(name)
        checked = [validate_point_id(pid) for pid in ids]
        flt = self._check_filter(coll, filter)
        if filter is not None and flt is None:
            raise InvalidArgument("an empty filter would delete every point; drop the collection")
        deleted, watermark = coll.delete(checked) if checked else (0, coll.watermark)
        if flt is not None:
            more, watermark = coll.delete_matching(flt)
            deleted += more
        return deleted, watermark

    def count(self, name: str, filter: Filter | None = None) -> int:
        coll = self._get(name)
        return coll.count(self._check_filter(coll, filter))

    def scroll(
        self,
        name: str,
        filter: Filter | None = None,
        limit: int = 100,
        cursor: bytes = b"",
        *,
        with_vectors: bool = False,
        with_attributes: bool = True,
    ) -> ScrollPage:
        coll = self._get(name)
        if limit < 1:
            raise InvalidArgument(f"scroll limit must be positive, got {limit}")
        self.limits.check("max_scroll_limit", limit)
        if cursor and len(cursor) != 8:
            raise InvalidArgument("scroll cursor is malformed; pass back next_cursor unchanged")
        return coll.scroll(
            self._check_filter(coll, filter),
            limit,
            cursor,
            with_vectors=with_vectors,
            with_attributes=with_attributes,
        )

    # -- search ----------------------------------------------------------------------------

    def search(
        self,
        name: str,
        vector: np.ndarray,
        params: SearchParams,
        filter: Filter | None = None,
        *,
        model: str = "",
    ) -> SearchResult:
        arr = np.asarray(vector)
        if arr.ndim != 1:
            raise InvalidVector(f"a query vector must be 1-dimensional, got shape {arr.shape}")
        coll = self._get(name)
        self._check_params(params)
        queries = self._prepared(coll, arr[None, :], model)
        return coll.search_one(queries[0], params, self._check_filter(coll, filter),
                               on_plan=self._on_plan(coll))

    def search_batch(
        self,
        name: str,
        queries: np.ndarray,
        params: SearchParams,
        filters: Sequence[Filter | None] | None = None,
        *,
        model: str = "",
    ) -> list[SearchResult]:
        coll, arr = self._checked_queries(name, queries, params, model)
        flts: list[Filter | None] | None = None
        if filters:
            if len(filters) == 1:
                flts = [self._check_filter(coll, filters[0])] * len(arr)
            elif len(filters) == len(arr):
                flts = [self._check_filter(coll, f) for f in filters]
                deadline.checkpoint("checking filters")
            else:
                raise InvalidArgument(
                    f"got {len(filters)} filters for {len(arr)} queries: pass 0, 1 or one each"
                )
        return coll.search_batch(arr, params, flts, on_plan=self._on_plan(coll))

    def _checked_queries(
        self, name: str, queries: np.ndarray, params: SearchParams, model: str
    ) -> tuple[Collection, np.ndarray]:
        """The collection, and the queries checked, adapted for `model` and, for cosine,
        normalised; or the error for the request's parameters."""
        coll = self._get(name)
        self._check_params(params)
        return coll, self._prepared(coll, queries, model)

    def _check_params(self, params: SearchParams) -> None:
        """k and ef positive and within the limits (compared inline: every search asks)."""
        limits, k, ef = self.limits, params.k, params.ef
        if not 0 < k <= limits.max_k or (ef is not None and not 0 < ef <= limits.max_ef):
            params.validate()
            limits.check("max_k", k)
            if ef is not None:
                limits.check("max_ef", ef)

    def _prepared(self, coll: Collection, queries: Any, model: str) -> np.ndarray:
        """The queries as a checked float32 matrix: through the model's adapter, if it has
        one, then checked and, for cosine, normalised (a NaN or Inf in a row stays one through
        the adapter, so the row number holds)."""
        arr = as_matrix(queries, coll.dim, coll.name, "queries")
        if arr.shape[0] > self.limits.max_batch_queries:
            self.limits.check("max_batch_queries", arr.shape[0],
                              "the number of queries in the request")
        arr = prepare_queries(coll, model, arr)
        return checked_queries(arr, cosine=coll.metric is Metric.COSINE)

    def _on_plan(self, coll: Collection) -> Callable[[Plan, bool], None] | None:
        """The per-query plan callback for the observers (metrics), if there are any."""
        observers = self._observers
        if not observers:
            return None

        def on_plan(plan: Plan, filtered: bool) -> None:
            for observer in observers:
                observer.query_planned(coll.name, plan, filtered)

        return on_plan

    # -- lifecycle -------------------------------------------------------------------------

    def checkpoint(self, *, skip_while_indexing: bool = False) -> int:
        """Checkpoint every dirty collection now; returns how many were saved.

        The periodic checkpointer skips collections whose graph is still catching up with a
        bulk load (see `Collection.checkpoint`).
        """
        with self._lock:
            colls = list(self._collections.values())
        return sum(1 for c in colls if c.checkpoint(skip_while_indexing=skip_while_indexing))

    def _checkpoint_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.checkpoint(skip_while_indexing=True)
            except Exception:  # keep serving; the next round or a restart replays the log
                log.exception("background checkpoint failed")

    def close(self, *, checkpoint: bool = True) -> None:
        """Stop the checkpointer, save every dirty index (unless told not to), close stores."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            colls = list(self._collections.values())
        self._checkpointer.join(timeout=60)
        for coll in colls:
            coll.close(checkpoint=checkpoint)
        log.info("engine closed (%d collections checkpointed)", len(colls))
