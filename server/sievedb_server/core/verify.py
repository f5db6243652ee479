"""Consistency checks of a collection's derived structures against LMDB (tests and ops).

`check_collection` recomputes, from the stored attributes and labels, what the attribute
indexes, the live set and the HNSW graph should hold, and lists every disagreement.
An empty list means consistent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pyroaring import BitMap

from sievedb_server.index.attributes import AttributeIndex, StagedChanges

if TYPE_CHECKING:
    from sievedb_server.core.collection import Collection

__all__ = ["check_collection", "recompute_attribute_index"]


def recompute_attribute_index(coll: Collection) -> AttributeIndex:
    """A fresh in-memory attribute index built from the stored attributes alone."""
    fresh = AttributeIndex(coll.spec.schema)
    staged = StagedChanges()
    with coll.store.read() as txn:
        for label, _ in coll.store.iter_labels(txn):
            fresh.stage(staged, label, None, coll.store.attributes(txn, label))
    for key in set(staged.adds):
        staged.new_postings[key] = BitMap(staged.adds[key])
    for fname, spec in fresh.fields.items():
        if fname not in fresh.numeric and spec.type.value in ("integer", "float", "datetime"):
            from sievedb_server.index.attributes import NumericIndex

            fresh.numeric[fname] = NumericIndex(np.empty(0), np.empty(0, dtype=np.int64))
    fresh.apply(staged)
    return fresh


def _numeric_pairs(index: AttributeIndex, fname: str) -> set[tuple[float, int]]:
    num = index.numeric[fname]
    pairs = {
        (float(v), int(lb))
        for v, lb in zip(num.values.tolist(), num.labels.tolist())
        if lb not in num.stale
    }
    pairs |= {(v, lb) for lb, v in num.tail.items()}
    return pairs


def check_collection(coll: Collection) -> list[str]:
    problems: list[str] = []
    with coll.store.read() as txn:
        stored = BitMap(label for label, _ in coll.store.iter_labels(txn))
    if stored != coll.live_bitmap:
        problems.append(
            f"live set differs from LMDB: {len(stored ^ coll.live_bitmap)} labels disagree"
        )
    if len(stored) != coll.live_count:
        problems.append(f"live count {coll.live_count} != stored {len(stored)}")
    fresh = recompute_attribute_index(coll)
    mine = {k: v for k, v in coll.attr_index.postings.items() if v}
    want = {k: v for k, v in fresh.postings.items() if v}
    for key in set(mine) | set(want):
        if mine.get(key, BitMap()) != want.get(key, BitMap()):
            problems.append(f"posting list {key} differs from a recomputation")
    for fname in fresh.numeric:
        if _numeric_pairs(coll.attr_index, fname) != _numeric_pairs(fresh, fname):
            problems.append(f"numeric index {fname!r} differs from a recomputation")
    in_graph = BitMap(coll.graph.labels().astype(np.uint32))
    missing = stored - in_graph
    if missing:
        problems.append(f"{len(missing)} live points are not in the HNSW graph")
    return problems
