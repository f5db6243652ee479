"""Seeded synthetic data: clustered vectors (low intrinsic dimension) with simple attributes.

Used by `sievedb demo`, the tests and the benchmarks, so all three see the same kind of data.
Pure numpy; no server dependencies.
"""

from __future__ import annotations

import numpy as np

__all__ = ["clustered_vectors", "demo_attributes"]

CATEGORIES = ("cs.LG", "cs.CV", "cs.CL", "math.ST", "stat.ML", "cs.IR", "physics", "q-bio")


def clustered_vectors(
    n: int,
    dim: int,
    *,
    clusters: int = 64,
    intrinsic_dim: int = 16,
    noise: float = 0.35,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors float32 (n, dim), cluster assignment (n,)): Gaussian clusters on a subspace.

    Points lie near a random `intrinsic_dim`-dimensional subspace, grouped around `clusters`
    centres, like real embeddings; cluster sizes are Zipf-skewed.
    """
    rng = np.random.default_rng(seed)
    k = min(intrinsic_dim, dim)
    basis = np.linalg.qr(rng.standard_normal((dim, k)))[0].T  # (k, dim), orthonormal rows
    centres = rng.standard_normal((clusters, k)) * 2.0
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.8
    assign = rng.choice(clusters, size=n, p=weights / weights.sum())
    latent = centres[assign] + rng.standard_normal((n, k)) * noise * 2.0
    vecs = latent @ basis + rng.standard_normal((n, dim)) * noise * 0.1
    return vecs.astype(np.float32), assign.astype(np.int64)


def demo_attributes(assign: np.ndarray, *, seed: int = 0) -> list[dict[str, object]]:
    """Attributes correlated with the clusters: category, year, a few tags."""
    rng = np.random.default_rng(seed + 1)
    n = len(assign)
    cats = np.asarray(CATEGORIES)[assign % len(CATEGORIES)]
    years = rng.integers(2000, 2025, size=n)
    tag_pool = np.asarray(["rag", "vision", "speech", "graphs", "theory", "systems"])
    out: list[dict[str, object]] = []
    for i in range(n):
        tags = tag_pool[rng.random(len(tag_pool)) < 0.25].tolist()
        out.append({"category": str(cats[i]), "year": int(years[i]), "tags": tags})
    return out
