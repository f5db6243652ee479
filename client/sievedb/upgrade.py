"""Zero-downtime re-index for an incompatible model: a shadow collection behind an alias.

    up = ShadowReindex(db, alias="items", shadow="items_v2", model="v2", dim=9)
    up.prepare(probe_ids, probe_labels, v2_probe)        # shadow collection, v2 its active model
    up.backfill(batches, load_id="items-v2")             # bulk-load path: durable, resumable
    up.dual_write(ids, v1_vectors, v2_vectors, attrs)    # writes during the re-index go to both
    up.switch()                                          # alias -> shadow, atomically
    up.rollback()                                        # alias -> previous target

Queries keep going to the alias, served by the old collection and model until `switch`, which
re-points the alias in one step (each query is served wholly by one side). Until then nothing
the shadow does is visible, so a crash during the re-index leaves the old model serving; the
backfill resumes from the rows the server recorded as durable under `load_id`.

`backfill_order` gives the order that recovers accuracy fastest when only part of the gallery
can be re-embedded (the lambda-orthogonality heuristic from the compatibility notes): items
farthest from their class mean in the old space first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sievedb.client import Client
    from sievedb.models import AliasInfo

__all__ = ["ShadowReindex", "backfill_order"]


def backfill_order(old_vectors: np.ndarray, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """Row order for a partial backfill: farthest from their (normalised) class mean first."""
    x = np.asarray(old_vectors, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    y = np.asarray(labels)
    dist = np.empty(len(x))
    for c in np.unique(y):
        rows = y == c
        mu = x[rows].mean(axis=0)
        mu /= max(float(np.linalg.norm(mu)), 1e-12)
        dist[rows] = 1.0 - x[rows] @ mu
    return np.argsort(-dist, kind="stable")


class ShadowReindex:
    """Client-side orchestration of a shadow re-index behind `alias` (see the module doc)."""

    def __init__(
        self,
        db: Client,
        *,
        alias: str,
        shadow: str,
        model: str,
        dim: int,
        metric: str = "cosine",
        schema: Mapping[str, str] | None = None,
        simplex: tuple[int, int] | None = None,
    ) -> None:
        self.db, self.alias, self.shadow, self.model = db, alias, shadow, model
        self.dim, self.metric, self.schema, self.simplex = dim, metric, schema, simplex

    @property
    def source(self) -> str:
        """The collection the alias serves from now."""
        for a in self.db.list_aliases():
            if a.alias == self.alias:
                return a.collection
        raise LookupError(f"alias {self.alias!r} does not exist")

    def prepare(
        self,
        probe_ids: Sequence[Any] | None = None,
        probe_labels: Sequence[int] | None = None,
        probe_vectors: Any = None,
    ) -> None:
        """Create the shadow collection (if missing) with the new model as its active model."""
        if self.shadow not in {c.name for c in self.db.list_collections()}:
            self.db.create_collection(self.shadow, self.dim, self.metric, schema=self.schema)
        if any(m.id == self.model for m in self.db.list_models(self.shadow)):
            return
        if probe_ids is not None and probe_labels is not None:
            self.db.set_probe_set(self.shadow, probe_ids, probe_labels)
        self.db.register_model(
            self.shadow,
            self.model,
            self.dim,
            simplex=self.simplex,
            probe_vectors=probe_vectors if probe_ids is not None else None,
        )

    def resume_from(self, load_id: str) -> int:
        """Source rows of `load_id` already durable in the shadow (restart the backfill there)."""
        return self.db.load_status(self.shadow, load_id).rows_committed

    def backfill(
        self, batches: Iterable[Any], *, load_id: str = "", start: int = 0, progress: Any = None
    ) -> int:
        """Stream new-model vectors into the shadow through the bulk-load path."""
        result = self.db.bulk_load(
            self.shadow, batches, load_id=load_id, start=start, progress=progress, model=self.model
        )
        return int(result.upserted)

    def dual_write(
        self,
        ids: Sequence[Any],
        old_vectors: Any,
        new_vectors: Any,
        attributes: Sequence[Mapping[str, Any] | None] | None = None,
        old_model: str = "",
    ) -> None:
        """A write during the re-index: old model into the serving side, new into the shadow."""
        self.db.upsert(self.alias, ids, old_vectors, attributes, model=old_model)
        self.db.upsert(self.shadow, ids, new_vectors, attributes, model=self.model)

    def switch(self, *, wait_indexed: bool = True) -> AliasInfo:
        """Re-point the alias at the shadow in one atomic step (after its graph caught up)."""
        if wait_indexed:
            self.db.wait_indexed(self.shadow, poll=0.05)
        return self.db.set_alias(self.alias, self.shadow)

    def rollback(self) -> AliasInfo:
        """Re-point the alias at its previous target (the old collection keeps serving)."""
        return self.db.rollback_alias(self.alias)
