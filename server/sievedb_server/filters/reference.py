"""THE reference filter evaluator: the one definition of what a filter means.

Every faster path (posting lists, the planner, HNSW-side filtering) must agree with
`matches` on every input; property tests compare them. The semantics are Qdrant's
(checked against `lib/segment/src/payload_storage/condition_checker.rs` and the
"Filtering" docs), applied to a flat attribute dict.

Boolean structure — ``Filter(must, should, must_not, min_should)`` matches when

    every must condition holds
    AND at least max(min_should, 1) should conditions hold   (skipped when should is empty)
    AND no must_not condition holds

so the empty filter (and ``filter=None``) matches every point.

Conditions — *v* is the stored value of ``key``; "missing" means the key is absent.
A list value is *multi-valued*: the "elements" below are its items; a scalar is a
one-element list. Nested lists inside a list are never equal to anything.

| condition               | missing | None  | [] (empty list) | scalar / list                        |
|-------------------------|---------|-------|-----------------|--------------------------------------|
| Match(k, x)             | False   | False | False           | some element == x (typed, see below)  |
| MatchAny(k, xs)         | False   | False | False           | some element == some x in xs          |
| MatchExcept(k, xs)      | False   | False | False           | some non-null element equals no x    |
| Range(k, gt..lte)       | False   | False | False           | some element within all set bounds    |
| ValuesCount(k, gt..lte) | count 0 | 0     | 0               | count = len(list), 1 for a scalar     |
| IsEmpty(k)              | True    | True  | True            | False                                |
| IsNull(k)               | False   | True  | False           | False (a list is never null)          |
| HasId(ids)              | the point id is in ids (1 and "1" differ)                              |

Equality (match value / any / except) is typed, as in Qdrant: strings equal strings,
integers equal integers, booleans equal booleans (``True`` never equals ``1``), datetimes
equal datetimes (same instant). A stored float never equals an integer for match; use a
range. Ranges compare numerically: ints and floats together (``3`` is within ``gte=3.0``),
booleans are not numbers; a datetime range compares only datetime values. NaN is in no
range. Naive datetimes are taken as UTC.

Match except, the subtle case (Qdrant's choice, kept): ``x not in [a, b]`` is true for
a scalar outside the set, false for a missing or null field, and for a list true iff
*some* element is outside the set — ``["a", "c"] not in ["a"]`` is **true**, and an empty
list is false. A value of another type than the listed ones counts as "outside".
Use ``not (x in [a, b])`` (must_not + match any) for "no element is in the set, or the
field is missing".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sievedb_server.filters.model import (
    Condition,
    Filter,
    HasId,
    IsEmpty,
    IsNull,
    Match,
    MatchAny,
    MatchExcept,
    Range,
    ValuesCount,
)

__all__ = ["matches", "matches_condition"]

_MISSING: Any = object()


def matches(flt: Filter | None, point_id: int | str, attributes: Mapping[str, Any] | None) -> bool:
    """Whether the point (``point_id``, ``attributes``) passes ``flt`` (``None`` passes all).

    ``attributes`` may be ``None`` (a point without attributes: every field is missing).
    Pure and total: never raises for well-formed filters and JSON-like attribute values.
    """
    if flt is None:
        return True
    return _filter(flt, point_id, attributes or {})


def matches_condition(cond: Condition, point_id: int | str,
                      attributes: Mapping[str, Any] | None) -> bool:
    """Whether a single condition holds for the point (same semantics as `matches`)."""
    return _condition(cond, point_id, attributes or {})


def _filter(flt: Filter, pid: int | str, attrs: Mapping[str, Any]) -> bool:
    for cond in flt.must:
        if not _condition(cond, pid, attrs):
            return False
    for cond in flt.must_not:
        if _condition(cond, pid, attrs):
            return False
    if not flt.should:
        return True
    need = max(flt.min_should, 1)
    hits = 0
    for cond in flt.should:
        if _condition(cond, pid, attrs):
            hits += 1
            if hits >= need:
                return True
    return False


def _condition(cond: Condition, pid: int | str, attrs: Mapping[str, Any]) -> bool:
    if isinstance(cond, Filter):
        return _filter(cond, pid, attrs)
    if isinstance(cond, HasId):
        return _id_key(pid) in _id_keys(cond)
    value = attrs.get(cond.key, _MISSING)
    if isinstance(cond, IsEmpty):
        return value is _MISSING or value is None or (isinstance(value, list) and not value)
    if isinstance(cond, IsNull):
        return value is None
    if isinstance(cond, ValuesCount):
        return _count_ok(cond, _count(value))
    if value is _MISSING or value is None:
        return False
    elements = value if isinstance(value, list | tuple) else (value,)
    if isinstance(cond, Match):
        wanted = _typed(cond.value)
        return any(_typed(e) == wanted for e in elements)
    if isinstance(cond, MatchAny):
        keys = _value_keys(cond)
        return any(_typed(e) in keys for e in elements)
    if isinstance(cond, MatchExcept):
        keys = _value_keys(cond)
        return any(e is not None and _typed(e) not in keys for e in elements)
    if isinstance(cond, Range):
        return any(_in_range(cond, e) for e in elements)
    raise TypeError(f"not a filter condition: {cond!r}")  # unreachable for model values


def _typed(value: object) -> tuple[str, Any] | None:
    """Type-tagged identity for equality; ``None`` for values that equal nothing."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("i", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, datetime):
        return ("t", value.replace(tzinfo=UTC) if value.tzinfo is None else value)
    return None


def _id_key(pid: object) -> tuple[str, object]:
    return ("s", pid) if isinstance(pid, str) else ("i", pid)


@lru_cache(maxsize=4096)
def _id_keys(cond: HasId) -> frozenset[tuple[str, object]]:
    return frozenset(_id_key(pid) for pid in cond.ids)


@lru_cache(maxsize=4096)
def _value_keys(cond: MatchAny | MatchExcept) -> frozenset[tuple[str, Any] | None]:
    return frozenset(_typed(v) for v in cond.values)


def _count(value: object) -> int:
    if value is _MISSING or value is None:
        return 0
    if isinstance(value, list | tuple):
        return len(value)
    return 1


def _count_ok(cond: ValuesCount, n: int) -> bool:
    return ((cond.gt is None or n > cond.gt) and (cond.gte is None or n >= cond.gte)
            and (cond.lt is None or n < cond.lt) and (cond.lte is None or n <= cond.lte))


def _in_range(cond: Range, element: object) -> bool:
    if cond.is_datetime:
        if not isinstance(element, datetime):
            return False
        x: Any = element.replace(tzinfo=UTC) if element.tzinfo is None else element
    elif isinstance(element, int | float) and not isinstance(element, bool):
        x = element
    else:
        return False
    return ((cond.gt is None or x > cond.gt) and (cond.gte is None or x >= cond.gte)
            and (cond.lt is None or x < cond.lt) and (cond.lte is None or x <= cond.lte))
