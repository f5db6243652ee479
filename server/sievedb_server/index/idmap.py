"""label → point id in memory, so answering a query needs no LMDB lookup per hit.

Labels are never reused, so the id of a label never changes: the cache is filled when a
label is created (or on open, from LMDB) and never invalidated; whether a label is still
live is the live mask's business. Integer ids live in a numpy array, string ids in a dict.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sievedb_server.core.types import PointId

__all__ = ["LabelIds"]


class LabelIds:
    def __init__(self, capacity: int) -> None:
        self.num = np.zeros(capacity, dtype=np.uint64)
        self.is_num = np.zeros(capacity, dtype=bool)
        self.strs: dict[int, str] = {}

    def grow(self, capacity: int) -> None:
        if capacity <= len(self.num):
            return
        num = np.zeros(capacity, dtype=np.uint64)
        num[: len(self.num)] = self.num
        is_num = np.zeros(capacity, dtype=bool)
        is_num[: len(self.is_num)] = self.is_num
        self.num, self.is_num = num, is_num

    def set(self, pairs: Iterable[tuple[int, PointId]]) -> None:
        for label, pid in pairs:
            if isinstance(pid, int):
                self.num[label] = pid
                self.is_num[label] = True
            else:
                self.strs[label] = pid

    def lookup(self, labels: np.ndarray) -> list[PointId]:
        if labels.size == 0:
            return []
        if self.is_num[labels].all():
            return self.num[labels].tolist()  # int64 → Python ints
        return [
            int(self.num[lb]) if self.is_num[lb] else self.strs[int(lb)] for lb in labels.tolist()
        ]
