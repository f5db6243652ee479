"""Client side of the model registry: probe set, register, check, promote (a Client mixin).

db.set_probe_set("items", probe_ids, probe_labels)
db.register_model("items", "v1", dim=9, probe_vectors=v1_probe, simplex=(10, 9))
db.register_model("items", "v2", dim=9, probe_vectors=v2_probe, simplex=(10, 9))
check = db.check_model("items", "v2")        # check.compatible, check.reasons, check.report
db.promote_model("items", "v2")               # or adapter="procrustes" when incompatible
db.search("items", v2_query, model="v2")
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb import _wire

__all__ = ["AliasInfo", "CompatCheck", "ModelInfo", "ModelsMixin"]

_UNSET: Any = object()  # "use the client's default timeout"


@dataclass(frozen=True)
class ModelInfo:
    id: str
    dim: int
    state: str  # active, candidate, promoted
    generation: int
    adapter: str = ""
    is_default: bool = False
    normalized: bool = True
    simplex: tuple[int, int, tuple[int, ...]] | None = None  # (num_classes, dim, class_to_vertex)
    description: str = ""


@dataclass(frozen=True)
class CompatCheck:
    compatible: bool
    reasons: list[str]
    report: dict[str, Any] = field(default_factory=dict)  # every number; see the README


@dataclass(frozen=True)
class AliasInfo:
    alias: str
    collection: str
    previous: str = ""  # where `rollback_alias` goes


def _alias(msg: pb.AliasInfo) -> AliasInfo:
    return AliasInfo(msg.alias, msg.collection, msg.previous)


def _info(msg: pb.ModelInfo) -> ModelInfo:
    s = msg.spec
    simplex = (
        (s.simplex.num_classes, s.simplex.dim, tuple(s.simplex.class_to_vertex))
        if s.HasField("simplex")
        else None
    )
    return ModelInfo(
        s.id,
        s.dim,
        msg.state,
        msg.generation,
        msg.adapter,
        msg.is_default,
        s.normalized,
        simplex,
        s.description,
    )


def _thresholds(thresholds: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(thresholds)) if thresholds else ""


class ModelsMixin:
    timeout: float | None

    def _call(self, method: str, request: Any, timeout: Any) -> Any:  # provided by Client
        raise NotImplementedError

    def _rpc(self, method: str, request: Any, timeout: Any) -> Any:
        return self._call(method, request, self.timeout if timeout is _UNSET else timeout)

    def set_probe_set(
        self,
        collection: str,
        item_ids: Sequence[Any],
        labels: Sequence[int],
        *,
        replace: bool = False,
        timeout: Any = _UNSET,
    ) -> int:
        """Register the labelled probe items (ids + class labels), in a fixed order."""
        req = pb.SetProbeSetRequest(
            collection=collection,
            item_ids=[str(i) for i in item_ids],
            labels=[int(v) for v in labels],
            replace=replace,
        )
        return int(self._rpc("SetProbeSet", req, timeout).items)

    def register_model(
        self,
        collection: str,
        model: str,
        dim: int,
        *,
        probe_vectors: Any = None,
        normalized: bool = True,
        simplex: tuple[int, int] | tuple[int, int, Sequence[int]] | None = None,
        description: str = "",
        timeout: Any = _UNSET,
    ) -> ModelInfo:
        """Register a model (the first becomes the active one) with its probe embeddings.

        `simplex` = (num_classes, dim[, class_to_vertex]) declares the fixed d-Simplex
        classifier the model was trained against.
        """
        spec = pb.ModelSpec(id=model, dim=int(dim), normalized=normalized, description=description)
        if simplex is not None:
            mapping = list(simplex[2]) if len(simplex) > 2 else []  # type: ignore[misc]
            spec.simplex.CopyFrom(
                pb.SimplexSpec(num_classes=simplex[0], dim=simplex[1], class_to_vertex=mapping)
            )
        req = pb.RegisterModelRequest(collection=collection, model=spec)
        if probe_vectors is not None:
            req.probe_vectors.CopyFrom(_wire.encode_vectors(_wire.vector_matrix(probe_vectors)))
        return _info(self._rpc("RegisterModel", req, timeout).model)

    def list_models(self, collection: str, *, timeout: Any = _UNSET) -> list[ModelInfo]:
        reply = self._rpc("ListModels", pb.ListModelsRequest(collection=collection), timeout)
        return [_info(m) for m in reply.models]

    def check_model(
        self,
        collection: str,
        model: str,
        *,
        probe_vectors: Any = None,
        thresholds: Mapping[str, Any] | None = None,
        seed: int = 0,
        timeout: Any = _UNSET,
    ) -> CompatCheck:
        """The full compatibility report of `model` against every live generation."""
        req = pb.CheckModelRequest(
            collection=collection, model=model, seed=seed, thresholds_json=_thresholds(thresholds)
        )
        if probe_vectors is not None:
            req.probe_vectors.CopyFrom(_wire.encode_vectors(_wire.vector_matrix(probe_vectors)))
        reply = self._rpc("CheckModel", req, timeout)
        return CompatCheck(reply.compatible, list(reply.reasons), json.loads(reply.report_json))

    def promote_model(
        self,
        collection: str,
        model: str,
        *,
        adapter: str = "",
        thresholds: Mapping[str, Any] | None = None,
        make_default: bool = False,
        seed: int = 0,
        timeout: Any = _UNSET,
    ) -> tuple[ModelInfo, CompatCheck]:
        """Make a compatible model queryable against the existing index (no vector rewritten).

        Incompatible: raises `IncompatibleModel` unless `adapter` ("procrustes" / "lowrank")
        fits a query adapter that passes the check on held-out probe items.
        """
        req = pb.PromoteModelRequest(
            collection=collection,
            model=model,
            adapter=adapter,
            thresholds_json=_thresholds(thresholds),
            make_default=make_default,
            seed=seed,
        )
        reply = self._rpc("PromoteModel", req, timeout)
        report = json.loads(reply.report_json)
        return _info(reply.model), CompatCheck(report["compatible"], report["reasons"], report)

    # --- aliases (every method taking a collection name resolves them) ---------------------

    def set_alias(self, alias: str, collection: str, *, timeout: Any = _UNSET) -> AliasInfo:
        """Create `alias` or re-point it atomically at `collection`."""
        req = pb.SetAliasRequest(alias=alias, collection=collection)
        return _alias(self._rpc("SetAlias", req, timeout).alias)

    def rollback_alias(self, alias: str, *, timeout: Any = _UNSET) -> AliasInfo:
        """Point `alias` back at its previous target."""
        req = pb.RollbackAliasRequest(alias=alias)
        return _alias(self._rpc("RollbackAlias", req, timeout).alias)

    def delete_alias(self, alias: str, *, timeout: Any = _UNSET) -> bool:
        return bool(self._rpc("DeleteAlias", pb.DeleteAliasRequest(alias=alias), timeout).deleted)

    def list_aliases(self, *, timeout: Any = _UNSET) -> list[AliasInfo]:
        reply = self._rpc("ListAliases", pb.ListAliasesRequest(), timeout)
        return [_alias(a) for a in reply.aliases]
