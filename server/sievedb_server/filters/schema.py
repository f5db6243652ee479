"""Attribute validation against a collection schema, and filter/schema type checks.

`validate_attributes(schema, attrs)` returns a *new*, normalised dict or raises
`InvalidAttributes` naming the field and the expected type:

| declared type | accepted                                            | stored as                |
|---------------|-----------------------------------------------------|--------------------------|
| INTEGER       | an integer (not bool), signed 64-bit               | int                      |
| FLOAT         | a finite int or float (not bool)                    | float                    |
| KEYWORD       | a string                                            | str                      |
| KEYWORD_LIST  | a list/tuple of strings, or one string              | list[str] (one string → [s]) |
| BOOLEAN       | a bool                                              | bool                     |
| DATETIME      | a datetime (naive = UTC) or an ISO 8601 string      | aware datetime in UTC    |
| any declared  | None (an explicit null)                             | None                     |
| undeclared    | None, bool, int (64-bit), finite float, str, datetime, or a flat list of those | as given (ints/floats/datetimes normalised as above) |

Integers for DATETIME are refused on purpose: seconds, milliseconds and microseconds are
too easy to confuse. Numpy scalars are accepted where their Python counterparts are.
Keys follow `sievedb_server.names` (1-128 characters, ≤ 256 UTF-8 bytes, no control
characters, no path separators).

Sizes are bounded by `sievedb_server.limits` (RESOURCE_EXHAUSTED / `RequestTooLarge`): keys
per point, UTF-8 bytes per string, values per list, encoded bytes per point, and the UTF-8
bytes of a string in an *indexed* keyword field (its posting key must fit an LMDB key).

`validate_filter(schema, flt)` raises `InvalidFilter` when a condition cannot make sense for a
declared field (a range on a keyword, an integer match on a keyword, equality on a float...).
Conditions on undeclared fields are allowed (they simply evaluate per the reference).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgpack
import numpy as np

from sievedb_server.core.types import FieldSpec, FieldType
from sievedb_server.errors import InvalidAttributes, InvalidFilter, RequestTooLarge
from sievedb_server.filters.model import (
    Filter,
    Match,
    MatchAny,
    MatchExcept,
    Range,
)
from sievedb_server.limits import DEFAULT_LIMITS, INDEXED_KEYWORD_MAX_BYTES, Limits
from sievedb_server.names import key_problem

__all__ = ["validate_attributes", "validate_filter", "validate_key"]

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

_EXPECTED = {
    FieldType.INTEGER: "an integer",
    FieldType.FLOAT: "a finite number",
    FieldType.KEYWORD: "a string",
    FieldType.KEYWORD_LIST: "a list of strings",
    FieldType.BOOLEAN: "a boolean",
    FieldType.DATETIME: "a datetime",
}


def validate_key(key: object) -> str:
    """An attribute key (see `sievedb_server.names`)."""
    problem = key_problem(key)
    if problem is not None:
        raise InvalidAttributes(f"attribute key {key!r} {problem}")
    return key  # type: ignore[return-value]


def validate_attributes(schema: Sequence[FieldSpec], attrs: Mapping[str, Any] | None,
                        limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A normalised copy of ``attrs`` (``None`` → ``{}``); see the module table."""
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise InvalidAttributes(f"attributes must be a mapping, got {type(attrs).__name__}")
    limits.check("max_attribute_keys", len(attrs))
    declared = {spec.name: spec for spec in schema}
    out: dict[str, Any] = {}
    estimate = 5
    for key, value in attrs.items():
        validate_key(key)
        spec = declared.get(key)
        clean = _undeclared(key, value) if spec is None else _declared(key, spec.type, value)
        estimate += len(key) * 4 + 5 + _check_sizes(key, clean, spec, limits)
        out[key] = clean
    if estimate > limits.max_attribute_bytes:  # the estimate is an upper bound: pack to be sure
        size = len(msgpack.packb(out, datetime=True, use_bin_type=True))
        limits.check("max_attribute_bytes", size)
    return out


def _check_sizes(key: str, value: Any, spec: FieldSpec | None, limits: Limits) -> int:
    """Enforce the size limits on one normalised value; return an upper bound of its
    msgpack size."""
    items = value if isinstance(value, list) else (value,)
    if isinstance(value, list):
        limits.check("max_list_values", len(value),
                     f"the number of values in attribute {key!r}")
    indexed_keyword = spec is not None and spec.indexed and spec.type in (
        FieldType.KEYWORD, FieldType.KEYWORD_LIST)
    total = 5
    for item in items:
        if isinstance(item, str):
            size = len(item.encode("utf-8", "surrogatepass"))
            limits.check("max_string_bytes", size,
                         f"the UTF-8 size of a string in attribute {key!r}")
            if indexed_keyword and size > INDEXED_KEYWORD_MAX_BYTES:
                raise RequestTooLarge(
                    f"attribute {key!r} is an indexed keyword field: its values are at most "
                    f"{INDEXED_KEYWORD_MAX_BYTES} UTF-8 bytes, got {size} (declare it unindexed "
                    "to store longer strings)"
                )
            total += size + 5
        else:
            total += 16
    return total


def _mismatch(key: str, ftype: FieldType, value: object) -> InvalidAttributes:
    return InvalidAttributes(
        f"attribute {key!r} is declared {ftype.value} and must be {_EXPECTED[ftype]}, "
        f"got {type(value).__name__} {_short(value)}"
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _declared(key: str, ftype: FieldType, value: Any) -> Any:
    if value is None:
        return None
    if ftype is FieldType.INTEGER:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return _int(key, value)
    elif ftype is FieldType.FLOAT:
        if isinstance(value, numbers.Real) and not isinstance(value, bool | numbers.Integral):
            return _float(key, value)
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return float(int(value))
    elif ftype is FieldType.KEYWORD:
        if isinstance(value, str):
            return value
    elif ftype is FieldType.KEYWORD_LIST:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
    elif ftype is FieldType.BOOLEAN:
        if isinstance(value, bool | np.bool_):
            return bool(value)
    elif ftype is FieldType.DATETIME:
        if isinstance(value, datetime):
            return _utc(value)
        if isinstance(value, str):
            try:
                return _utc(datetime.fromisoformat(value))
            except ValueError:
                raise InvalidAttributes(
                    f"attribute {key!r} is declared datetime but {_short(value)} is not an "
                    f"ISO 8601 datetime"
                ) from None
    raise _mismatch(key, ftype, value)


def _undeclared(key: str, value: Any, in_list: bool = False) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return _int(key, value)
    if isinstance(value, numbers.Real):
        return _float(key, value)
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, list | tuple) and not in_list:
        return [_undeclared(key, v, in_list=True) for v in value]
    what = "a nested list" if isinstance(value, list | tuple) else type(value).__name__
    raise InvalidAttributes(
        f"attribute {key!r} holds {what}; values must be null, bool, int, float, str, "
        f"datetime, or a flat list of those"
    )


def _int(key: str, value: numbers.Integral) -> int:
    number = int(value)
    if not _I64_MIN <= number <= _I64_MAX:
        raise InvalidAttributes(f"attribute {key!r}: integer {number} is outside signed 64-bit")
    return number


def _float(key: str, value: numbers.Real) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise InvalidAttributes(f"attribute {key!r}: float {number} is not finite")
    return number


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --------------------------------------------------------------------------------------
# Filters against the schema
# --------------------------------------------------------------------------------------

_MATCH_TYPES: dict[FieldType, tuple[type, ...]] = {
    FieldType.KEYWORD: (str,),
    FieldType.KEYWORD_LIST: (str,),
    FieldType.INTEGER: (int,),
    FieldType.BOOLEAN: (bool,),
    FieldType.DATETIME: (datetime,),
}


def validate_filter(
    schema: Sequence[FieldSpec] | Mapping[str, FieldType], flt: Filter | None
) -> Filter | None:
    """Return ``flt`` unchanged, or raise `InvalidFilter` for a type-incoherent condition.

    `schema` is the field specs, or the same as a name → type mapping (`field_types`), which a
    caller checking every request can keep."""
    if flt is None:
        return None
    _validate(flt, schema if isinstance(schema, Mapping) else field_types(schema))
    return flt


def field_types(schema: Sequence[FieldSpec]) -> dict[str, FieldType]:
    return {spec.name: spec.type for spec in schema}


def _validate(flt: Filter, declared: Mapping[str, FieldType]) -> None:
    for cond in flt.conditions():
        if isinstance(cond, Filter):
            _validate(cond, declared)
            continue
        key = cond.key
        ftype = declared.get(key) if key is not None else None
        if ftype is None:
            continue
        if isinstance(cond, Match | MatchAny | MatchExcept):
            _check_match(cond, ftype)
        elif isinstance(cond, Range):
            _check_range(cond, ftype)


def _check_match(cond: Match | MatchAny | MatchExcept, ftype: FieldType) -> None:
    if ftype is FieldType.FLOAT:
        raise InvalidFilter(
            f"field {cond.key!r} is declared float: equality on floats is not supported, "
            f"use a range (e.g. {cond.key} between 1.5 and 1.5)"
        )
    allowed = _MATCH_TYPES[ftype]
    values = (cond.value,) if isinstance(cond, Match) else cond.values
    for value in values:
        ok = isinstance(value, allowed) and (ftype is FieldType.BOOLEAN
                                             or not isinstance(value, bool))
        if not ok:
            raise InvalidFilter(
                f"field {cond.key!r} is declared {ftype.value}: cannot match it against "
                f"{type(value).__name__} {_short(value)}"
            )


def _check_range(cond: Range, ftype: FieldType) -> None:
    if ftype in (FieldType.INTEGER, FieldType.FLOAT):
        if cond.is_datetime:
            raise InvalidFilter(
                f"field {cond.key!r} is declared {ftype.value}: range bounds must be numbers, "
                f"not datetimes"
            )
        return
    if ftype is FieldType.DATETIME:
        if not cond.is_datetime:
            raise InvalidFilter(
                f"field {cond.key!r} is declared datetime: range bounds must be datetimes "
                f"(in expressions: datetime(\"2023-01-01\"))"
            )
        return
    raise InvalidFilter(
        f"field {cond.key!r} is declared {ftype.value}: a range applies only to integer, "
        f"float and datetime fields"
    )
