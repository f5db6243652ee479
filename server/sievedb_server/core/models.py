"""Per-collection model registry, probe set and the model gate (plain Python + numpy).

A collection may record the embedding models whose vectors it holds. Registry and probe set live
in the collection's own LMDB environment (named dbs `models` and `probes`, keys documented in
`storage.layout`), so they are as durable as the points and vanish with the collection.

Model states:
    active      the collection's default model: requests that name no model use it
    candidate   registered (probe embeddings stored) but not promoted: refused for queries/writes
    promoted    passed the compatibility check (possibly with a query adapter): queryable and
                writable against the existing index
The first model registered becomes `active` (it is the model that embedded the gallery);
later ones start as `candidate`. Promotion writes only registry records: O(probe set), never a
vector. A promoted model with an adapter maps its queries (and its written vectors) new -> old
with the adapter, so everything in the index stays in one space.

Every write names its model (empty = the active one) and the point records it in the reserved,
indexed keyword attribute `_model`, so "which model embedded this point" is filterable like any
attribute. Points written before the first registration carry no `_model`; they belong to the
first (generation 0) model.

Collections without a registry keep today's behaviour: an empty model field is accepted and a
named model is refused with MODEL_MISMATCH.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np
from numpy.typing import NDArray

from sievedb_server.compat import (
    Adapter,
    CompatReport,
    SimplexSpec,
    Thresholds,
    check_compatibility,
    fit_verified_adapter,
)
from sievedb_server.compat.adapters import ADAPTER_KINDS
from sievedb_server.core.types import Attributes, FieldSpec, FieldType
from sievedb_server.errors import (
    AlreadyExists,
    CorruptData,
    DimensionMismatch,
    IncompatibleModel,
    InvalidArgument,
    ModelMismatch,
    ModelNotFound,
)
from sievedb_server.filters.model import Filter, Match
from sievedb_server.names import validate_model_id
from sievedb_server.storage import layout
from sievedb_server.storage.store import raise_if_full

if TYPE_CHECKING:
    from sievedb_server.core.collection import Collection
    from sievedb_server.core.engine import Engine

__all__ = [
    "MODEL_FIELD",
    "ModelRecord",
    "ModelRegistry",
    "ModelService",
    "ModelSpec",
    "registry_of",
]

MODEL_FIELD = "_model"
STATES = ("active", "candidate", "promoted")
QUERYABLE = ("active", "promoted")


@dataclass(frozen=True)
class ModelSpec:
    id: str
    dim: int
    normalized: bool = True
    simplex: SimplexSpec | None = None
    description: str = ""

    def validate(self, collection_dim: int) -> ModelSpec:
        validate_model_id(self.id)
        if self.dim != collection_dim:
            raise DimensionMismatch(
                f"model {self.id!r} has dim {self.dim}, the collection has dim {collection_dim}"
            )
        if self.simplex is not None and self.simplex.dim != self.dim:
            raise InvalidArgument(
                f"model {self.id!r}: simplex dim {self.simplex.dim} != {self.dim}"
            )
        return self


@dataclass(frozen=True)
class ModelRecord:
    spec: ModelSpec
    state: str
    generation: int
    adapter: Adapter | None = None
    last_report: dict[str, Any] = field(default_factory=dict)  # verdict summary at promotion

    @property
    def queryable(self) -> bool:
        return self.state in QUERYABLE

    def pack(self) -> bytes:
        s = self.spec
        return bytes(
            msgpack.packb(
                {
                    "v": 1,
                    "id": s.id,
                    "dim": s.dim,
                    "normalized": s.normalized,
                    "simplex": s.simplex.to_dict() if s.simplex else None,
                    "description": s.description,
                    "state": self.state,
                    "generation": self.generation,
                    "adapter_kind": self.adapter.kind if self.adapter else "",
                    "adapter": self.adapter.to_bytes() if self.adapter else b"",
                    "last_report": json.dumps(self.last_report),
                },
                use_bin_type=True,
            )
        )

    @classmethod
    def unpack(cls, raw: bytes) -> ModelRecord:
        try:
            d = msgpack.unpackb(raw, raw=False)
            spec = ModelSpec(
                d["id"],
                int(d["dim"]),
                bool(d["normalized"]),
                SimplexSpec.from_dict(d["simplex"]) if d["simplex"] else None,
                d.get("description", ""),
            )
            adapter = (
                Adapter.from_bytes(d["adapter_kind"], d["adapter"], spec.dim)
                if d["adapter_kind"]
                else None
            )
            return cls(
                spec,
                d["state"],
                int(d["generation"]),
                adapter,
                json.loads(d.get("last_report") or "{}"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptData(f"unreadable model record: {exc}") from exc


class ModelRegistry:
    """The registry and probe set of one collection (reads cached, writes one LMDB txn each)."""

    def __init__(self, coll: Collection) -> None:
        self._coll = weakref.ref(coll)
        self._store = coll.store
        self._lock = threading.RLock()
        self._models: dict[str, ModelRecord] = {}
        self._default = ""
        self._load()

    def _load(self) -> None:
        db = self._store.db["models"]
        models: dict[str, ModelRecord] = {}
        default = ""
        with self._store.read() as txn, txn.cursor(db=db) as cur:
            for key, value in cur:
                k = bytes(key)
                if k.startswith(layout.MODEL_PREFIX):
                    rec = ModelRecord.unpack(bytes(value))
                    models[rec.spec.id] = rec
                elif k == layout.MODEL_DEFAULT:
                    default = bytes(value).decode()
        self._models, self._default = models, default

    # -- reads -----------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return not self._models

    @property
    def default_id(self) -> str:
        return self._default

    def models(self) -> list[ModelRecord]:
        return sorted(self._models.values(), key=lambda r: r.generation)

    def get(self, model_id: str) -> ModelRecord:
        rec = self._models.get(model_id)
        if rec is None:
            raise ModelNotFound(f"model {model_id!r} is not registered with this collection")
        return rec

    def resolve(self, model_id: str) -> ModelRecord | None:
        """The record a request naming `model_id` uses (None: no registry, today's behaviour)."""
        if not self._models:
            if model_id:
                raise ModelMismatch(
                    f"model {model_id!r} is not registered: this collection has no model registry"
                )
            return None
        rec = self._models.get(model_id or self._default)
        if rec is None:
            raise ModelMismatch(f"model {model_id!r} is not registered with this collection")
        if not rec.queryable:
            raise ModelMismatch(
                f"model {model_id!r} is registered but not promoted (state {rec.state}): "
                "run the compatibility check and promote it first"
            )
        return rec

    def probe(self) -> tuple[list[str], NDArray[np.int64]] | None:
        with self._store.read() as txn:
            raw_ids = txn.get(layout.PROBE_IDS, db=self._store.db["probes"])
            raw_labels = txn.get(layout.PROBE_LABELS, db=self._store.db["probes"])
            if raw_ids is None or raw_labels is None:
                return None
            ids = list(msgpack.unpackb(bytes(raw_ids), raw=False))
            labels = np.frombuffer(bytes(raw_labels), dtype="<i8").astype(np.int64)
        return ids, labels

    def probe_embeddings(self, model_id: str, dim: int) -> NDArray[np.float32] | None:
        with self._store.read() as txn:
            raw = txn.get(
                layout.PROBE_VECTORS_PREFIX + model_id.encode(), db=self._store.db["probes"]
            )
            if raw is None:
                return None
            return np.frombuffer(bytes(raw), dtype="<f4").reshape(-1, dim).copy()

    # -- writes (each one LMDB transaction) -------------------------------------------------

    def _commit(
        self,
        puts: Sequence[tuple[str, bytes, bytes]],
        deletes: Sequence[tuple[str, bytes]] = (),
        clear_probes: bool = False,
    ) -> None:
        txn = self._store.write()
        try:
            if clear_probes:
                txn.drop(self._store.db["probes"], delete=False)
            for db, key in deletes:
                txn.delete(key, db=self._store.db[db])
            for db, key, value in puts:
                txn.put(key, value, db=self._store.db[db])
        except BaseException as exc:
            txn.abort()
            raise_if_full(exc)
            raise
        self._store.commit(txn)

    def set_probe(self, item_ids: Sequence[str], labels: Sequence[int], replace: bool) -> None:
        if len(item_ids) != len(labels) or not item_ids:
            raise InvalidArgument(f"probe set: got {len(item_ids)} ids and {len(labels)} labels")
        if len(set(item_ids)) != len(item_ids):
            raise InvalidArgument("probe set: item ids must be unique")
        with self._lock:
            if self.probe() is not None and not replace:
                raise AlreadyExists("the collection already has a probe set (pass replace)")
            self._commit(
                [
                    ("probes", layout.PROBE_IDS, msgpack.packb(list(item_ids), use_bin_type=True)),
                    ("probes", layout.PROBE_LABELS, np.asarray(labels, dtype="<i8").tobytes()),
                ],
                clear_probes=True,
            )

    def put_probe_embeddings(self, model_id: str, vectors: NDArray[Any]) -> None:
        probe = self.probe()
        if probe is None:
            raise InvalidArgument("register a probe set (item ids + labels) before its embeddings")
        arr = np.ascontiguousarray(vectors, dtype="<f4")
        if arr.ndim != 2 or len(arr) != len(probe[0]):
            raise InvalidArgument(
                f"probe embeddings: expected {len(probe[0])} rows (one per probe item), got {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise InvalidArgument("probe embeddings contain NaN or Inf")
        self._commit([("probes", layout.PROBE_VECTORS_PREFIX + model_id.encode(), arr.tobytes())])

    def put_record(self, rec: ModelRecord, *, make_default: bool = False) -> None:
        with self._lock:
            puts = [("models", layout.MODEL_PREFIX + rec.spec.id.encode(), rec.pack())]
            if make_default:
                puts.append(("models", layout.MODEL_DEFAULT, rec.spec.id.encode()))
            self._commit(puts)
            self._models[rec.spec.id] = rec
            if make_default:
                self._default = rec.spec.id

    def next_generation(self) -> int:
        return max((r.generation for r in self._models.values()), default=-1) + 1


_registries: weakref.WeakKeyDictionary[Collection, ModelRegistry] = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def registry_of(coll: Collection) -> ModelRegistry:
    reg = _registries.get(coll)  # every request asks: no lock once it exists
    if reg is not None:
        return reg
    with _registries_lock:
        reg = _registries.get(coll)
        if reg is None:
            reg = _registries[coll] = ModelRegistry(coll)
        return reg


# -- the gate used by the engine's write and query paths ----------------------------------


def prepare_queries(
    coll: Collection, model: str, queries: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Refuse an unregistered/unpromoted model; map queries through its adapter if it has one."""
    rec = registry_of(coll).resolve(model)
    if rec is None or rec.adapter is None:
        return queries
    return np.ascontiguousarray(rec.adapter.apply(queries))


def prepare_writes(
    coll: Collection,
    model: str,
    vectors: NDArray[np.float32],
    attributes: Sequence[Attributes | None] | None,
) -> tuple[NDArray[np.float32], Sequence[Attributes | None] | None]:
    """Tag each point with the model that embedded it (and adapt its vector if needed)."""
    rec = registry_of(coll).resolve(model)
    if rec is None:
        return vectors, attributes
    if rec.adapter is not None:
        vectors = np.ascontiguousarray(rec.adapter.apply(vectors))
    tag = rec.spec.id
    base = attributes if attributes else [None] * len(vectors)
    return vectors, [{**(a or {}), MODEL_FIELD: tag} for a in base]


# -- the engine-level service (register, check, promote) ----------------------------------


class ModelService:
    """Model registry operations on an engine's collections (the RPCs' implementation)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _coll(self, name: str) -> Collection:
        return self.engine._get(name)

    def set_probe_set(
        self, name: str, item_ids: Sequence[str], labels: Sequence[int], replace: bool = False
    ) -> int:
        registry_of(self._coll(name)).set_probe(item_ids, labels, replace)
        return len(item_ids)

    def list_models(self, name: str) -> tuple[list[ModelRecord], str]:
        reg = registry_of(self._coll(name))
        return reg.models(), reg.default_id

    def register(
        self, name: str, spec: ModelSpec, probe_vectors: NDArray[Any] | None
    ) -> ModelRecord:
        coll = self._coll(name)
        spec.validate(coll.dim)
        reg = registry_of(coll)
        with reg._lock:
            if spec.id in {r.spec.id for r in reg.models()}:
                raise AlreadyExists(f"model {spec.id!r} is already registered")
            if probe_vectors is not None and len(probe_vectors):
                reg.put_probe_embeddings(spec.id, probe_vectors)
            first = reg.empty
            if first and MODEL_FIELD not in {f.name for f in coll.spec.schema if f.indexed}:
                self.engine.update_schema(name, [FieldSpec(MODEL_FIELD, FieldType.KEYWORD, True)])
            rec = ModelRecord(spec, "active" if first else "candidate", reg.next_generation())
            reg.put_record(rec, make_default=first)
        return rec

    def live_generations(self, name: str) -> list[ModelRecord]:
        """Queryable models whose vectors are still in the gallery (the default one always)."""
        coll = self._coll(name)
        reg = registry_of(coll)
        out = []
        for rec in reg.models():
            if not rec.queryable:
                continue
            present = (
                rec.spec.id == reg.default_id
                or coll.count(Filter(must=(Match(MODEL_FIELD, rec.spec.id),))) > 0
            )
            if present or rec.generation == 0:
                out.append(rec)
        return out

    def check(
        self,
        name: str,
        model_id: str,
        probe_vectors: NDArray[Any] | None = None,
        thresholds: Thresholds | None = None,
        seed: int = 0,
    ) -> CompatReport:
        """The full report of `model_id` (registered) against every live generation.

        `probe_vectors` (optional) replace the candidate's stored probe embeddings first.
        """
        coll = self._coll(name)
        reg = registry_of(coll)
        rec = reg.get(model_id)
        if probe_vectors is not None and len(probe_vectors):
            reg.put_probe_embeddings(model_id, probe_vectors)
        labels, cand, gens, fps = self._inputs(reg, rec, name)
        return check_compatibility(
            labels,
            cand,
            gens,
            candidate_id=model_id,
            metric=coll.metric.value,
            simplex=rec.spec.simplex,
            simplex_fingerprints=fps,
            thresholds=thresholds or Thresholds(),
            seed=seed,
        )

    def _inputs(
        self, reg: ModelRegistry, rec: ModelRecord, name: str
    ) -> tuple[
        NDArray[np.int64], NDArray[np.float32], dict[str, NDArray[np.float32]], dict[str, str]
    ]:
        probe = reg.probe()
        if probe is None:
            raise InvalidArgument("the collection has no probe set: register one first")
        cand = reg.probe_embeddings(rec.spec.id, rec.spec.dim)
        if cand is None:
            raise InvalidArgument(f"model {rec.spec.id!r} has no probe embeddings: send them")
        gens: dict[str, NDArray[np.float32]] = {}
        fps = {rec.spec.id: rec.spec.simplex.fingerprint if rec.spec.simplex else ""}
        for g in self.live_generations(name):
            if g.spec.id == rec.spec.id:
                continue
            emb = reg.probe_embeddings(g.spec.id, g.spec.dim)
            if emb is None:
                raise InvalidArgument(f"generation {g.spec.id!r} has no probe embeddings")
            # The gallery holds this generation's vectors in the space its adapter maps to.
            gens[g.spec.id] = g.adapter.apply(emb) if g.adapter else emb
            fps[g.spec.id] = g.spec.simplex.fingerprint if g.spec.simplex else ""
        return probe[1], cand, gens, fps

    def promote(
        self,
        name: str,
        model_id: str,
        *,
        adapter: str = "",
        thresholds: Thresholds | None = None,
        make_default: bool = False,
        seed: int = 0,
    ) -> tuple[ModelRecord, CompatReport]:
        """Promote a compatible model (O(probe set): registry records only, no vector written).

        If the check fails and `adapter` names a kind, fit it on part of the probe set and
        promote with the adapter only if the held-out check passes. Otherwise IncompatibleModel.
        """
        if adapter and adapter not in ADAPTER_KINDS:
            raise InvalidArgument(f"adapter must be one of {ADAPTER_KINDS}, got {adapter!r}")
        coll = self._coll(name)
        reg = registry_of(coll)
        with reg._lock:
            rec = reg.get(model_id)
            if rec.queryable and not make_default:
                raise AlreadyExists(f"model {model_id!r} is already {rec.state}")
            th = thresholds or Thresholds()
            labels, cand, gens, fps = self._inputs(reg, rec, name)
            report = check_compatibility(
                labels,
                cand,
                gens,
                candidate_id=model_id,
                metric=coll.metric.value,
                simplex=rec.spec.simplex,
                simplex_fingerprints=fps,
                thresholds=th,
                seed=seed,
            )
            fitted: Adapter | None = None
            if not report.compatible and adapter and gens:
                target = reg.default_id if reg.default_id in gens else next(iter(gens))
                fitted, report, _ = fit_verified_adapter(
                    labels,
                    cand,
                    gens,
                    target,
                    kind=adapter,
                    candidate_id=model_id,
                    metric=coll.metric.value,
                    thresholds=th,
                    seed=seed,
                )
            if not report.compatible:
                err = IncompatibleModel(
                    f"model {model_id!r} is not compatible"
                    + (f" (even with a {adapter} adapter on held-out probes)" if adapter else "")
                    + ": "
                    + "; ".join(report.reasons[:6])
                )
                err.report = report  # type: ignore[attr-defined]
                raise err
            state = "active" if make_default or rec.state == "active" else "promoted"
            new = ModelRecord(
                rec.spec,
                state,
                rec.generation,
                fitted,
                {
                    "compatible": True,
                    "adapter": adapter if fitted else "",
                    "reasons": report.reasons,
                },
            )
            if make_default and reg.default_id and reg.default_id != model_id:
                old = reg.get(reg.default_id)
                reg.put_record(
                    ModelRecord(old.spec, "promoted", old.generation, old.adapter, old.last_report)
                )
            reg.put_record(new, make_default=make_default)
        return new, report
