"""Query adapters: a linear map new -> old fitted on part of the probe set, verified on the rest.

An adapter is applied to *queries* of the candidate model only; the gallery is never touched.
Kinds:
- "procrustes": orthogonal R = U V^T from SVD(N^T O) (preserves norms and angles, so a rotated
  or vertex-permuted space is repaired exactly and nothing else is distorted);
- "lowrank": x -> x + x A with A the rank-r truncation of the least-squares residual map
  (ridge-regularised), for spaces that are close but not an exact rotation apart.

`fit_verified_adapter` fits on a stratified `fit_fraction` of the probe items and re-runs the full
compatibility check on the held-out items with adapted candidate embeddings; the caller promotes
with the adapter only if that held-out report passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sievedb_server.compat import metrics as m
from sievedb_server.compat.checks import (
    DEFAULT_THRESHOLDS,
    CompatReport,
    Thresholds,
    check_compatibility,
    procrustes,
)

__all__ = ["ADAPTER_KINDS", "Adapter", "fit_adapter", "fit_verified_adapter"]

ADAPTER_KINDS = ("procrustes", "lowrank")


@dataclass(frozen=True)
class Adapter:
    kind: str
    matrix: NDArray[np.float32]  # d x d, queries are mapped as x @ matrix

    def apply(self, x: NDArray[Any]) -> NDArray[np.float32]:
        out: NDArray[np.float32] = (np.asarray(x, dtype=np.float32) @ self.matrix).astype(
            np.float32
        )
        return out

    def to_bytes(self) -> bytes:
        return np.ascontiguousarray(self.matrix, dtype="<f4").tobytes()

    @classmethod
    def from_bytes(cls, kind: str, raw: bytes, dim: int) -> Adapter:
        return cls(kind, np.frombuffer(raw, dtype="<f4").reshape(dim, dim).copy())


def fit_adapter(
    source: NDArray[Any],
    target: NDArray[Any],
    kind: str = "procrustes",
    rank: int = 8,
    ridge: float = 1e-3,
    metric: str = "cosine",
) -> Adapter:
    """Fit a map with source @ M ~= target (paired rows)."""
    s, t = m.prepare(source, metric), m.prepare(target, metric)
    if kind == "procrustes":
        mat = procrustes(s, t)
    elif kind == "lowrank":
        d = s.shape[1]
        a = np.linalg.solve(s.T @ s + ridge * len(s) * np.eye(d), s.T @ (t - s))
        u, sv, vt = np.linalg.svd(a)
        r = max(1, min(rank, d))
        mat = np.eye(d) + (u[:, :r] * sv[:r]) @ vt[:r]
    else:
        raise ValueError(f"unknown adapter kind {kind!r}; expected one of {ADAPTER_KINDS}")
    return Adapter(kind, mat.astype(np.float32))


def fit_verified_adapter(
    labels: NDArray[Any],
    candidate: NDArray[Any],
    generations: dict[str, NDArray[Any]],
    target: str,
    *,
    kind: str = "procrustes",
    candidate_id: str = "candidate",
    metric: str = "cosine",
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    fit_fraction: float = 0.5,
    seed: int = 0,
    **check_kwargs: Any,
) -> tuple[Adapter, CompatReport, NDArray[np.bool_]]:
    """Fit on a stratified part, check on the held-out part; returns (adapter, report, fit_mask)."""
    y = np.asarray(labels, dtype=np.int64)
    fit = m.stratified_split(y, fit_fraction, seed + 7919)
    adapter = fit_adapter(
        np.asarray(candidate)[fit], np.asarray(generations[target])[fit], kind=kind, metric=metric
    )
    held = ~fit
    report = check_compatibility(
        y[held],
        adapter.apply(np.asarray(candidate)[held]),
        {k: np.asarray(v)[held] for k, v in generations.items()},
        candidate_id=candidate_id,
        metric=metric,
        thresholds=thresholds,
        seed=seed,
        **check_kwargs,
    )
    return adapter, report, fit
