"""The fixed d-Simplex classifier a compatible model is trained against (pure numpy).

Construction (Pernici et al., Regular Polytope Networks; as in iamcl2r and CoReS): for K classes
in n = K - 1 dimensions take the standard basis e_1..e_n plus alpha*(1..1) with
alpha = (1 - sqrt(K)) / n, centre on the centroid and unit-normalise each row. Rows have unit
norm, pairwise cosine exactly -1/(K-1) and sum to zero.

Any rotation of a simplex is again a simplex, so compatibility needs the *identical* matrix and
the identical class->vertex map: `SimplexSpec.fingerprint` hashes both so two registrations can
be compared exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["CONSTRUCTION", "SimplexSpec", "dsimplex"]

CONSTRUCTION = "dsimplex-v1"  # bump if the construction ever changes


def dsimplex(num_classes: int) -> NDArray[np.float64]:
    """The K x (K-1) d-Simplex prototype matrix, one unit row per vertex."""
    if num_classes < 2:
        raise ValueError("a d-Simplex needs at least 2 classes")
    n = num_classes - 1
    alpha = (1.0 - np.sqrt(num_classes)) / n
    v = np.vstack([np.eye(n), np.full((1, n), alpha)])
    v = v - v.mean(axis=0, keepdims=True)
    out: NDArray[np.float64] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


@dataclass(frozen=True)
class SimplexSpec:
    """A declared fixed classifier: K vertices in dim K-1 and the class->vertex map.

    `class_to_vertex[c]` is the vertex of class label `c`; empty means the identity map.
    """

    num_classes: int
    dim: int
    class_to_vertex: tuple[int, ...] = field(default=())
    construction: str = CONSTRUCTION

    def __post_init__(self) -> None:
        if self.dim != self.num_classes - 1:
            raise ValueError(
                f"a d-Simplex over {self.num_classes} classes lives in dim "
                f"{self.num_classes - 1}, not {self.dim}"
            )
        if self.class_to_vertex and sorted(self.class_to_vertex) != list(range(self.num_classes)):
            raise ValueError("class_to_vertex must be a permutation of 0..num_classes-1")

    def vertex_of(self, labels: NDArray[np.int64]) -> NDArray[np.int64]:
        if not self.class_to_vertex:
            return labels
        return np.asarray(self.class_to_vertex, dtype=np.int64)[labels]

    def prototypes(self) -> NDArray[np.float64]:
        return dsimplex(self.num_classes)

    @property
    def fingerprint(self) -> str:
        mapping = self.class_to_vertex or tuple(range(self.num_classes))
        text = f"{self.construction}:{self.num_classes}:{self.dim}:{','.join(map(str, mapping))}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, object]:
        return {
            "num_classes": self.num_classes,
            "dim": self.dim,
            "class_to_vertex": list(self.class_to_vertex),
            "construction": self.construction,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> SimplexSpec:
        return cls(
            num_classes=int(raw["num_classes"]),  # type: ignore[call-overload]
            dim=int(raw["dim"]),  # type: ignore[call-overload]
            class_to_vertex=tuple(int(v) for v in raw.get("class_to_vertex") or ()),  # type: ignore[attr-defined]
            construction=str(raw.get("construction", CONSTRUCTION)),
        )
