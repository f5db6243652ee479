"""Tiny numpy encoders for trying model upgrades: compatible and incompatible pairs.

The recipe (see the compatibility notes in the architecture guide): K Gaussian classes in R^in;
a 2-layer encoder x -> relu(x W1 + b1) W2 into d = K - 1 dimensions, trained with full-batch
Adam against a *fixed d-Simplex cosine classifier* (logits = s * normalise(z) . w_k). Two
encoders trained independently (different init, different data) against the same simplex and
class->vertex map are compatible; one trained with a learnable classifier, one rotated by a random
orthogonal matrix, or one trained against a permuted vertex map is not.

Used by tests and by `examples/upgrade.py`; numpy only, seeded, ~0.1 s per model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Encoder", "GaussianClasses", "dsimplex", "model_zoo", "train_encoder", "train_zoo"]

F32 = NDArray[np.float32]


def dsimplex(num_classes: int) -> NDArray[np.float64]:
    """K x (K-1) d-Simplex prototypes (same construction as the server's compat.simplex)."""
    n = num_classes - 1
    v = np.vstack([np.eye(n), np.full((1, n), (1.0 - np.sqrt(num_classes)) / n)])
    v = v - v.mean(axis=0, keepdims=True)
    out: NDArray[np.float64] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


@dataclass(frozen=True)
class GaussianClasses:
    """K isotropic Gaussian classes in R^dim with N(0, I) centres."""

    centres: NDArray[np.float64]
    sigma: float

    @classmethod
    def make(
        cls, num_classes: int = 10, dim: int = 32, sigma: float = 1.6, seed: int = 0
    ) -> GaussianClasses:
        return cls(np.random.default_rng(seed).normal(size=(num_classes, dim)), sigma)

    def sample(self, per_class: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        rng = np.random.default_rng(seed)
        k, dim = self.centres.shape
        y = np.repeat(np.arange(k), per_class)
        x = self.centres[y] + self.sigma * rng.normal(size=(len(y), dim))
        return x, y


@dataclass(frozen=True)
class Encoder:
    w1: NDArray[np.float64]
    b1: NDArray[np.float64]
    w2: NDArray[np.float64]
    post: NDArray[np.float64] | None = None  # an optional fixed rotation applied to outputs

    def embed(self, x: NDArray[Any]) -> F32:
        z = np.maximum(x @ self.w1 + self.b1, 0.0) @ self.w2
        if self.post is not None:
            z = z @ self.post
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return z.astype(np.float32)

    def rotated(self, seed: int) -> Encoder:
        q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(self.w2.shape[1],) * 2))
        return Encoder(self.w1, self.b1, self.w2, q)


def train_encoder(
    x: NDArray[np.float64],
    y: NDArray[np.int64],
    *,
    num_classes: int,
    steps: int,
    seed: int,
    classifier: str = "simplex",
    vertex_shift: int = 0,
    hidden: int = 32,
    scale: float = 10.0,
    lr: float = 0.05,
) -> Encoder:
    """Full-batch Adam on cross-entropy of a cosine classifier (fixed simplex or learnable)."""
    rng = np.random.default_rng(seed)
    d = num_classes - 1
    params = {
        "w1": rng.normal(scale=np.sqrt(2.0 / x.shape[1]), size=(x.shape[1], hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.normal(scale=np.sqrt(2.0 / hidden), size=(hidden, d)),
    }
    if classifier == "learnable":
        params["w"] = rng.normal(scale=0.1, size=(num_classes, d))
    elif classifier != "simplex":
        raise ValueError(f"unknown classifier {classifier!r}")
    fixed_w = dsimplex(num_classes)
    target = (y + vertex_shift) % num_classes
    onehot = np.eye(num_classes)[target]
    mom = {k: np.zeros_like(v) for k, v in params.items()}
    vel = {k: np.zeros_like(v) for k, v in params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    n = len(x)
    for t in range(1, steps + 1):
        w = params.get("w", fixed_w)
        pre = x @ params["w1"] + params["b1"]
        h = np.maximum(pre, 0.0)
        e = h @ params["w2"]
        norm = np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        u = e / norm
        logits = scale * u @ w.T
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        dlog = (p - onehot) / n
        du = scale * dlog @ w
        de = (du - u * (du * u).sum(1, keepdims=True)) / norm
        dh = de @ params["w2"].T
        dpre = dh * (pre > 0)
        grads = {"w1": x.T @ dpre, "b1": dpre.sum(0), "w2": h.T @ de}
        if "w" in params:
            grads["w"] = scale * dlog.T @ u
        for k, g in grads.items():
            mom[k] = b1 * mom[k] + (1 - b1) * g
            vel[k] = b2 * vel[k] + (1 - b2) * g * g
            params[k] -= lr * (mom[k] / (1 - b1**t)) / (np.sqrt(vel[k] / (1 - b2**t)) + eps)
    return Encoder(params["w1"], params["b1"], params["w2"])


def train_zoo(
    x_old: NDArray[np.float64],
    y_old: NDArray[np.int64],
    x_new: NDArray[np.float64],
    y_new: NDArray[np.int64],
    *,
    num_classes: int,
    seed: int,
    old_steps: int = 150,
    new_steps: int = 200,
) -> dict[str, Encoder]:
    """Five encoders: v1 (old data), v2 (new data, independent init, same simplex: compatible),
    and the incompatible `learnable` (learnable classifier), `rotated` (v2 times a random
    orthogonal matrix) and `permuted` (fixed simplex, class->vertex map shifted by one)."""
    v2 = train_encoder(x_new, y_new, steps=new_steps, seed=seed + 2, num_classes=num_classes)
    return {
        "v1": train_encoder(x_old, y_old, steps=old_steps, seed=seed + 1, num_classes=num_classes),
        "v2": v2,
        "learnable": train_encoder(
            x_new,
            y_new,
            steps=new_steps,
            seed=seed + 3,
            classifier="learnable",
            num_classes=num_classes,
        ),
        "rotated": v2.rotated(seed + 4),
        "permuted": train_encoder(
            x_new, y_new, steps=new_steps, seed=seed + 5, vertex_shift=1, num_classes=num_classes
        ),
    }


def model_zoo(
    seed: int, num_classes: int = 10, dim: int = 32
) -> tuple[GaussianClasses, dict[str, Encoder]]:
    """The recipe's Gaussian classes and `train_zoo` on them (old: 15/class, new: 100/class)."""
    data = GaussianClasses.make(num_classes, dim, seed=seed)
    x_old, y_old = data.sample(15, seed + 100)
    x_new, y_new = data.sample(100, seed + 200)
    return data, train_zoo(x_old, y_old, x_new, y_new, num_classes=num_classes, seed=seed)
