"""The domain filter: immutable, hashable values with Qdrant's boolean structure.

A `Filter` is ``AND(all of must, at least min_should of should, none of must_not)``; each
clause holds *conditions*, and a `Filter` is itself a condition (nesting). The meaning of each
condition is defined once, in `sievedb_server.filters.reference`; this module only builds and
validates the shapes.

Contracts
- Every class is a frozen dataclass that validates itself on construction and raises
  `InvalidFilter` (never `AssertionError`) for a malformed value.
- Equality and hashing are *type-aware*: ``Match("x", True) != Match("x", 1)`` and
  ``Range("x", gt=1) != Range("x", gt=1.0)`` even though Python says ``True == 1``; a round trip
  through the wire must not silently change a type.
- Every condition has a ``key`` attribute: the field it reads, or ``None`` for `HasId` and a
  nested `Filter` (the planner relies on this).
- Naive datetimes are taken as UTC and stored timezone-aware.
- ``str(filter)`` renders the expression language of `sievedb_server.filters.parser`, so it
  is both readable in logs / explain output and re-parseable to an equivalent filter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeAlias

from sievedb_server.errors import InvalidFilter
from sievedb_server.limits import DEFAULT_LIMITS, KEY_MAX_CHARS, STR_ID_MAX_BYTES, Limits
from sievedb_server.names import key_problem

__all__ = [
    "MAX_DEPTH",
    "MAX_KEY_CHARS",
    "MAX_SIZE",
    "Condition",
    "Filter",
    "HasId",
    "IsEmpty",
    "IsNull",
    "Match",
    "MatchAny",
    "MatchExcept",
    "MatchScalar",
    "Range",
    "RangeBound",
    "ValuesCount",
    "and_",
    "check_limits",
    "measure",
    "not_",
    "or_",
    "value_key",
]

MatchScalar: TypeAlias = str | int | bool | datetime
"""Values a match condition may compare for equality (no floats: use a range)."""
RangeBound: TypeAlias = int | float | datetime

# The defaults of the limits table (`sievedb_server.limits`), kept under their old names.
MAX_DEPTH = DEFAULT_LIMITS.max_filter_depth
"""Deepest allowed nesting of filters (the top-level filter has depth 1)."""
MAX_SIZE = DEFAULT_LIMITS.max_filter_nodes
"""Most nodes (conditions, nested filters, and values listed in any/except/has_id)."""

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
MAX_KEY_CHARS = KEY_MAX_CHARS
"""Longest field name (characters)."""


# --------------------------------------------------------------------------------------
# Typed values
# --------------------------------------------------------------------------------------


def value_key(value: object) -> tuple[str, Any]:
    """A hashable, type-tagged identity of a scalar so that ``True``, ``1`` and ``1.0`` differ.

    Also a sort key: values sort by type tag, then by value.
    """
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("i", value)
    if isinstance(value, float):
        return ("f", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, datetime):
        return ("t", value)
    raise InvalidFilter(f"unsupported value {value!r} of type {type(value).__name__}")


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _check_key(key: object, what: str) -> str:
    problem = key_problem(key)
    if problem is not None:
        shown = "" if problem.startswith("must") else f" {key!r}"
        raise InvalidFilter(f"{what}: field key{shown} {problem}")
    return key  # type: ignore[return-value]


def _match_scalar(value: object, what: str) -> MatchScalar:
    if isinstance(value, float):
        raise InvalidFilter(
            f"{what}: cannot match float {value!r} for equality; use a range instead"
        )
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _int64(value, what)
    if isinstance(value, bool | str):
        return value
    raise InvalidFilter(
        f"{what}: match value must be a string, integer, boolean or datetime, "
        f"got {type(value).__name__}"
    )


def _int64(value: int, what: str) -> int:
    if not _I64_MIN <= value <= _I64_MAX:
        raise InvalidFilter(f"{what}: integer {value} is outside the signed 64-bit range")
    return value


def _match_values(values: Iterable[object], what: str) -> tuple[MatchScalar, ...]:
    if isinstance(values, str | bytes):
        raise InvalidFilter(f"{what}: values must be a list, not a single string")
    unique = {value_key(v): v for v in (_match_scalar(v, what) for v in values)}
    return tuple(unique[k] for k in sorted(unique))


# --------------------------------------------------------------------------------------
# Rendering helpers (the expression language of parser.py)
# --------------------------------------------------------------------------------------

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
KEYWORDS = frozenset(
    {"and", "or", "not", "in", "between", "is", "null", "empty", "true", "false", "id",
     "count", "datetime", "at_least"}
)


def render_key(key: str) -> str:
    """A field name as the parser reads it: bare identifier, or backquoted with escapes."""
    if _IDENT_RE.fullmatch(key) and key.lower() not in KEYWORDS:
        return key
    return "`" + key.replace("\\", "\\\\").replace("`", "\\`") + "`"


def render_value(value: object) -> str:
    """A literal as the parser reads it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        escaped = (
            value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            .replace("\t", "\\t").replace("\r", "\\r")
        )
        escaped = "".join(
            f"\\u{ord(ch):04x}" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in escaped
        )
        return f'"{escaped}"'
    if isinstance(value, datetime):
        return f'datetime("{_aware(value).isoformat()}")'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    return repr(value)


# --------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------


class _Node:
    """Type-aware equality and hashing through `_identity()`."""

    __slots__ = ()

    def _identity(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._identity() == other._identity()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._identity()))


@dataclass(frozen=True, eq=False)
class Match(_Node):
    """The field equals ``value`` (for a list field: some element equals it)."""

    key: str
    value: MatchScalar

    def __post_init__(self) -> None:
        _check_key(self.key, "match")
        object.__setattr__(self, "value", _match_scalar(self.value, f"match on {self.key!r}"))

    def _identity(self) -> tuple[Any, ...]:
        return (self.key, value_key(self.value))

    def __str__(self) -> str:
        return f"{render_key(self.key)} == {render_value(self.value)}"


@dataclass(frozen=True, eq=False)
class MatchAny(_Node):
    """The field equals one of ``values`` (stored sorted and de-duplicated, type-aware)."""

    key: str
    values: tuple[MatchScalar, ...]

    def __post_init__(self) -> None:
        _check_key(self.key, "match any")
        object.__setattr__(
            self, "values", _match_values(self.values, f"match any on {self.key!r}")
        )

    def _identity(self) -> tuple[Any, ...]:
        return (self.key, tuple(value_key(v) for v in self.values))

    def __str__(self) -> str:
        return f"{render_key(self.key)} in {render_value(self.values)}"


@dataclass(frozen=True, eq=False)
class MatchExcept(_Node):
    """The field has a value outside ``values`` (see reference.py for lists and nulls)."""

    key: str
    values: tuple[MatchScalar, ...]

    def __post_init__(self) -> None:
        _check_key(self.key, "match except")
        object.__setattr__(
            self, "values", _match_values(self.values, f"match except on {self.key!r}")
        )

    def _identity(self) -> tuple[Any, ...]:
        return (self.key, tuple(value_key(v) for v in self.values))

    def __str__(self) -> str:
        return f"{render_key(self.key)} not in {render_value(self.values)}"


def _bounds_str(key: str, bounds: Iterable[tuple[str, object]]) -> str:
    parts = [f"{key} {op} {render_value(v)}" for op, v in bounds]
    return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"


_OPS = (("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<="))


@dataclass(frozen=True, eq=False)
class Range(_Node):
    """Numeric (int/float, compared numerically) or datetime bounds; unset bounds are open.

    At least one bound is required, and all bounds are numbers or all are datetimes.
    """

    key: str
    gt: RangeBound | None = None
    gte: RangeBound | None = None
    lt: RangeBound | None = None
    lte: RangeBound | None = None

    def __post_init__(self) -> None:
        _check_key(self.key, "range")
        what = f"range on {self.key!r}"
        kinds = set()
        for name, _ in _OPS:
            bound = getattr(self, name)
            if bound is None:
                continue
            if isinstance(bound, bool) or not isinstance(bound, int | float | datetime):
                raise InvalidFilter(
                    f"{what}: bound {name} must be a number or a datetime, "
                    f"got {type(bound).__name__}"
                )
            if isinstance(bound, float) and not math.isfinite(bound):
                raise InvalidFilter(f"{what}: bound {name} must be finite, got {bound}")
            if isinstance(bound, int):
                _int64(bound, f"{what}: bound {name}")
            if isinstance(bound, datetime):
                object.__setattr__(self, name, _aware(bound))
            kinds.add(isinstance(bound, datetime))
        if not kinds:
            raise InvalidFilter(f"{what}: needs at least one of gt, gte, lt, lte")
        if len(kinds) > 1:
            raise InvalidFilter(f"{what}: cannot mix datetime and numeric bounds")

    @property
    def is_datetime(self) -> bool:
        for bound in (self.gt, self.gte, self.lt, self.lte):  # all of one kind (checked above)
            if bound is not None:
                return isinstance(bound, datetime)
        return False

    def bounds(self) -> list[tuple[str, RangeBound]]:
        """The set bounds as (name, value) in the order gt, gte, lt, lte."""
        return [(n, getattr(self, n)) for n, _ in _OPS if getattr(self, n) is not None]

    def _identity(self) -> tuple[Any, ...]:
        return (self.key, *(None if v is None else value_key(v) for v in
                            (self.gt, self.gte, self.lt, self.lte)))

    def __str__(self) -> str:
        ops = dict(_OPS)
        return _bounds_str(render_key(self.key), ((ops[n], v) for n, v in self.bounds()))


@dataclass(frozen=True, eq=False)
class ValuesCount(_Node):
    """Bounds on the number of values (list length; 1 for a scalar; 0 when missing or null)."""

    key: str
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None

    def __post_init__(self) -> None:
        _check_key(self.key, "values count")
        seen = False
        for name, _ in _OPS:
            bound = getattr(self, name)
            if bound is None:
                continue
            if isinstance(bound, bool) or not isinstance(bound, int) or not 0 <= bound < 2**64:
                raise InvalidFilter(
                    f"values count on {self.key!r}: bound {name} must be a non-negative "
                    f"integer, got {bound!r}"
                )
            seen = True
        if not seen:
            raise InvalidFilter(
                f"values count on {self.key!r}: needs at least one of gt, gte, lt, lte"
            )

    def bounds(self) -> list[tuple[str, int]]:
        return [(n, getattr(self, n)) for n, _ in _OPS if getattr(self, n) is not None]

    def _identity(self) -> tuple[Any, ...]:
        return (self.key, self.gt, self.gte, self.lt, self.lte)

    def __str__(self) -> str:
        ops = dict(_OPS)
        return _bounds_str(f"count({render_key(self.key)})",
                           ((ops[n], v) for n, v in self.bounds()))


@dataclass(frozen=True, eq=False)
class IsEmpty(_Node):
    """The field is missing, null, or an empty list."""

    key: str

    def __post_init__(self) -> None:
        _check_key(self.key, "is empty")

    def _identity(self) -> tuple[Any, ...]:
        return (self.key,)

    def __str__(self) -> str:
        return f"{render_key(self.key)} is empty"


@dataclass(frozen=True, eq=False)
class IsNull(_Node):
    """The field is present with an explicit null value."""

    key: str

    def __post_init__(self) -> None:
        _check_key(self.key, "is null")

    def _identity(self) -> tuple[Any, ...]:
        return (self.key,)

    def __str__(self) -> str:
        return f"{render_key(self.key)} is null"


@dataclass(frozen=True, eq=False)
class HasId(_Node):
    """The point's id is one of ``ids`` (ints and strings are distinct: 1 != "1")."""

    ids: frozenset[int | str]
    key: ClassVar[None] = None

    def __post_init__(self) -> None:
        if isinstance(self.ids, str | bytes) or not isinstance(self.ids, Iterable):
            raise InvalidFilter("has_id: ids must be a collection of point ids")
        ids = frozenset(self.ids)
        for pid in ids:
            if isinstance(pid, bool) or not isinstance(pid, int | str):
                raise InvalidFilter(f"has_id: point id {pid!r} must be an integer or a string")
            if isinstance(pid, int) and not 0 <= pid < 2**64:
                raise InvalidFilter(f"has_id: point id {pid} is outside the unsigned 64-bit range")
            if isinstance(pid, str) and not pid:
                raise InvalidFilter("has_id: string point ids must not be empty")
            if isinstance(pid, str) and len(pid.encode("utf-8", "replace")) > STR_ID_MAX_BYTES:
                raise InvalidFilter(
                    f"has_id: string point ids are at most {STR_ID_MAX_BYTES} UTF-8 bytes"
                )
        object.__setattr__(self, "ids", ids)

    def _identity(self) -> tuple[Any, ...]:
        return (self.ids,)

    def __str__(self) -> str:
        ordered = sorted(self.ids, key=value_key)
        return f"id in {render_value(ordered)}"


@dataclass(frozen=True, eq=False)
class Filter(_Node):
    """``all(must) and count(should passing) >= max(min_should, 1 if should) and not any(must_not)``.

    The empty filter matches every point. ``min_should`` may not exceed ``len(should)``.
    Clauses keep their order (it is part of equality, so round trips are exact).
    """

    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()
    min_should: int = 0
    key: ClassVar[None] = None

    def __post_init__(self) -> None:
        for name in ("must", "should", "must_not"):
            clause = getattr(self, name)
            if isinstance(clause, _Node) or not isinstance(clause, Iterable):
                raise InvalidFilter(f"filter.{name} must be a sequence of conditions")
            clause = tuple(clause)
            for i, cond in enumerate(clause):
                if not isinstance(cond, _CONDITION_TYPES):
                    raise InvalidFilter(
                        f"filter.{name}[{i}] is not a condition: {type(cond).__name__}"
                    )
            object.__setattr__(self, name, clause)
        ms = self.min_should
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
            raise InvalidFilter(f"min_should must be a non-negative integer, got {ms!r}")
        if ms > len(self.should):
            raise InvalidFilter(
                f"min_should ({ms}) exceeds the number of should conditions ({len(self.should)})"
            )

    def is_empty(self) -> bool:
        """True when there are no clauses at all (the filter matches everything)."""
        return not (self.must or self.should or self.must_not)

    def conditions(self) -> tuple[Condition, ...]:
        return self.must + self.should + self.must_not

    def depth(self) -> int:
        """Nesting depth: 1 for a flat filter, +1 per nested filter level."""
        return 1 + max((c.depth() for c in self.conditions() if isinstance(c, Filter)),
                       default=0)

    def size(self) -> int:
        """Nodes in the tree: this filter, every condition, and every listed value/id."""
        total = 1
        for cond in self.conditions():
            if isinstance(cond, Filter):
                total += cond.size()
            elif isinstance(cond, MatchAny | MatchExcept):
                total += 1 + len(cond.values)
            elif isinstance(cond, HasId):
                total += 1 + len(cond.ids)
            else:
                total += 1
        return total

    def _identity(self) -> tuple[Any, ...]:
        return (self.must, self.should, self.must_not, self.min_should)

    def __str__(self) -> str:
        terms = [_term(c) for c in self.must]
        if self.should:
            if self.min_should > 1:
                inner = ", ".join(_term(c) for c in self.should)
                terms.append(f"at_least({self.min_should}, {inner})")
            elif len(self.should) == 1:
                terms.append(_term(self.should[0]))
            elif self.must or self.must_not:
                terms.append("(" + " or ".join(_term(c) for c in self.should) + ")")
            else:
                terms.append(" or ".join(_term(c) for c in self.should))
        terms.extend(f"not {_term(c)}" for c in self.must_not)
        return " and ".join(terms) if terms else "true"


def _term(cond: Condition) -> str:
    """A condition rendered as an operand of and/or/not (parenthesised if compound)."""
    text = str(cond)
    if isinstance(cond, Filter) and text != "true":
        return f"({text})"
    return text


Condition: TypeAlias = (
    Match | MatchAny | MatchExcept | Range | ValuesCount | IsEmpty | IsNull | HasId | Filter
)
_CONDITION_TYPES = (Match, MatchAny, MatchExcept, Range, ValuesCount, IsEmpty, IsNull, HasId,
                    Filter)


# --------------------------------------------------------------------------------------
# Combinators and limits
# --------------------------------------------------------------------------------------


def and_(*parts: Condition | None) -> Filter:
    """The conjunction of ``parts`` (``None`` parts are skipped; no parts → empty filter).

    Flattens: conditions go to ``must``; a filter's must/must_not are spliced in; the first
    filter with a ``should`` clause lends it (and its min_should), later ones are nested.
    """
    must: list[Condition] = []
    must_not: list[Condition] = []
    should: tuple[Condition, ...] = ()
    min_should = 0
    for part in parts:
        if part is None:
            continue
        if not isinstance(part, Filter):
            must.append(part)
            continue
        must.extend(part.must)
        must_not.extend(part.must_not)
        if part.should:
            if should:
                must.append(Filter(should=part.should, min_should=part.min_should))
            else:
                should, min_should = part.should, part.min_should
    return Filter(tuple(must), should, tuple(must_not), min_should)


def or_(*parts: Condition) -> Filter:
    """The disjunction of ``parts``; plain any-of filters among them are spliced in."""
    should: list[Condition] = []
    for part in parts:
        if (isinstance(part, Filter) and part.should and part.min_should <= 1
                and not part.must and not part.must_not):
            should.extend(part.should)
        else:
            should.append(part)
    if len(should) == 1:
        return and_(should[0])
    return Filter(should=tuple(should))


def not_(part: Condition) -> Filter:
    """The negation of ``part`` (a double negation of a single condition is removed)."""
    if isinstance(part, Filter) and not part.must and not part.should and len(part.must_not) == 1:
        return and_(part.must_not[0])
    if isinstance(part, Filter) and not part.should and not part.must_not and len(part.must) == 1:
        part = part.must[0]
    return Filter(must_not=(part,))


def check_limits(flt: Filter, limits: Limits = DEFAULT_LIMITS) -> Filter:
    """Return ``flt`` unchanged, or raise `RequestTooLarge` (RESOURCE_EXHAUSTED) naming the
    limit when it is nested too deep, has too many nodes, or lists too many values at once."""
    depth, size, longest = measure(flt)
    limits.check("max_filter_depth", depth)
    limits.check("max_filter_nodes", size)
    limits.check("max_match_values", longest)
    return flt


def measure(flt: Filter) -> tuple[int, int, int]:
    """(depth(), size(), longest value/id list) in one walk of the tree (every request)."""
    depth, size, longest = 1, 1, 0
    for cond in flt.conditions():
        if isinstance(cond, Filter):
            d, s, n = measure(cond)
            depth, size, longest = max(depth, d + 1), size + s, max(longest, n)
            continue
        listed = cond.values if isinstance(cond, MatchAny | MatchExcept) else (
            cond.ids if isinstance(cond, HasId) else ())
        size += 1 + len(listed)
        longest = max(longest, len(listed))
    return depth, size, longest
