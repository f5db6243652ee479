"""Consistency checks of a collection's derived structures against LMDB (tests and ops).

`check_collection` recomputes, from the stored attributes and labels, what the attribute
indexes, the live set and the HNSW graph should hold, and lists every disagreement.
An empty list means consistent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pyroaring import BitMap

from sievedb_server.index.attributes import AttributeIndex, StagedChanges

if TYPE_CHECKING:
    from sievedb_server.core.collection import Collection

__all__ = [
    "Problem",
    "check_collection",
    "find_problems",
    "recompute_attribute_index",
    "repair_collection",
]


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


def _coded_values(index: AttributeIndex, fname: str) -> dict[int, object] | None:
    """label → value key, as a code column says (None: the column gave up, `broken`)."""
    column = index.codes[fname]
    if column.broken:
        return None
    value_of = {code: vk for vk, code in column.code_of.items()}
    labels = np.flatnonzero(column.column >= 0)
    return {int(lb): value_of[int(column.column[lb])] for lb in labels}


@dataclass(frozen=True)
class Problem:
    """One disagreement between a derived structure and LMDB; `kind` says what repairs it."""

    kind: str  # "live" | "postings" | "numeric" | "graph"
    message: str

    def __str__(self) -> str:
        return self.message


def find_problems(coll: Collection) -> list[Problem]:
    problems: list[Problem] = []
    with coll.store.read() as txn:
        stored = BitMap(label for label, _ in coll.store.iter_labels(txn))
    if stored != coll.live_bitmap:
        problems.append(Problem(
            "live", f"live set differs from LMDB: {len(stored ^ coll.live_bitmap)} labels disagree"
        ))
    if len(stored) != coll.live_count:
        problems.append(Problem("live", f"live count {coll.live_count} != stored {len(stored)}"))
    fresh = recompute_attribute_index(coll)
    mine = {k: v for k, v in coll.attr_index.postings.items() if v}
    want = {k: v for k, v in fresh.postings.items() if v}
    for key in set(mine) | set(want):
        if mine.get(key, BitMap()) != want.get(key, BitMap()):
            problems.append(Problem("postings", f"posting list {key} differs from a recomputation"))
    for fname in fresh.numeric:
        if _numeric_pairs(coll.attr_index, fname) != _numeric_pairs(fresh, fname):
            problems.append(
                Problem("numeric", f"numeric index {fname!r} differs from a recomputation")
            )
    for fname in coll.attr_index.codes:
        if _coded_values(coll.attr_index, fname) != _coded_values(fresh, fname):
            problems.append(
                Problem("postings", f"code column {fname!r} differs from a recomputation")
            )
    in_graph = BitMap(coll.graph.labels().astype(np.uint32))
    missing = stored - in_graph - getattr(coll, "pending", BitMap())
    if missing:
        problems.append(Problem(
            "graph", f"{len(missing)} live points are neither in the HNSW graph nor pending"
        ))
    return problems


def check_collection(coll: Collection) -> list[str]:
    """Every disagreement as a message; empty means consistent."""
    return [p.message for p in find_problems(coll)]


def repair_collection(coll: Collection) -> list[str]:
    """Rebuild whatever `find_problems` reports from LMDB (the truth); returns what was done.

    Attribute indexes are rewritten from the stored attributes in one write transaction; the
    graph and vector file are rebuilt from the stored vectors and checkpointed. LMDB's own
    data (ids, vectors, attributes) is never changed.
    """
    kinds = {p.kind for p in find_problems(coll)}
    done: list[str] = []
    if kinds & {"postings", "numeric"}:
        coll.rebuild_attribute_indexes()
        done.append("rebuilt posting lists, code columns and numeric indexes from the stored "
                    "attributes")
    if kinds & {"live", "graph"}:
        coll.rebuild_derived()
        done.append("rebuilt the live set, vector file and HNSW graph from the stored vectors")
    return done
