"""proto ⇄ domain for filters and attribute values (the one owner of these translations).

- `decode_filter(msg)`: ``None`` for an absent or empty message; otherwise the structured
  clauses ANDed with the parsed ``expr`` (see `filters.model.and_`). Malformed parts raise
  `InvalidFilter` whose message starts with a path such as ``must[2].field.range:``.
- `encode_filter(flt)`: the structured form (``expr`` is never set); decoding it gives back
  an equal `Filter`.
- `decode_value(msg)` / `encode_value(value)`: one attribute value; datetimes travel as
  microseconds since the Unix epoch (UTC), lists as ``list_value``, ``None`` as
  ``null_value``. Errors raise `InvalidAttributes` (the filter decoder re-raises them as
  `InvalidFilter` with the path).
"""

from __future__ import annotations

from typing import Any

from sievedb_proto import values as _values
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_proto.values import datetime_to_micros

from sievedb_server.errors import InvalidAttributes, InvalidFilter, RequestTooLarge
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
    and_,
    check_limits,
)
from sievedb_server.filters.parser import parse
from sievedb_server.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "datetime_to_micros",
    "decode_filter",
    "decode_value",
    "encode_condition",
    "encode_filter",
    "encode_value",
]

_BOUNDS = ("gt", "gte", "lt", "lte")


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------


def decode_value(msg: pb.AttrValue) -> Any:
    """One wire value → None | bool | int | float | str | datetime (aware UTC) | list."""
    try:
        return _values.decode_value(msg)
    except ValueError as exc:
        raise InvalidAttributes(str(exc)) from None


def encode_value(value: Any) -> pb.AttrValue:
    """A Python attribute value → wire value. Naive datetimes are taken as UTC."""
    try:
        return _values.encode_value(value)
    except ValueError as exc:
        raise InvalidAttributes(str(exc)) from None


# --------------------------------------------------------------------------------------
# Filters: decode
# --------------------------------------------------------------------------------------


def decode_filter(msg: pb.Filter | None, limits: Limits = DEFAULT_LIMITS) -> Filter | None:
    """The domain filter of ``msg``; ``None`` when absent or without any clause or expr.

    Malformed → `InvalidFilter`; beyond a filter limit of `limits` → `RequestTooLarge`.
    """
    if msg is None:
        return None
    structured = _decode_filter(msg, "", 1, limits)
    expr = None
    if msg.expr.strip():
        try:
            expr = parse(msg.expr, limits)
        except InvalidFilter as exc:
            raise InvalidFilter(f"expr: {exc.message}") from None
        except RequestTooLarge as exc:
            raise RequestTooLarge(f"expr: {exc.message}") from None
    if structured.is_empty() and expr is None:
        return None
    if expr is None:
        return check_limits(structured, limits)
    if structured.is_empty():
        return expr
    return check_limits(and_(structured, expr), limits)


def _decode_filter(msg: pb.Filter, path: str, depth: int, limits: Limits) -> Filter:
    # Checked while descending, before the recursion gets deep.
    limits.check("max_filter_depth", depth)
    prefix = f"{path}." if path else ""
    clauses = {
        name: tuple(
            _decode_condition(c, f"{prefix}{name}[{i}]", depth, limits)
            for i, c in enumerate(getattr(msg, name))
        )
        for name in ("must", "should", "must_not")
    }
    if msg.expr.strip() and path:
        raise InvalidFilter(f"{path}.expr: a text expression is only allowed at the top level")
    try:
        return Filter(min_should=msg.min_should, **clauses)
    except InvalidFilter as exc:
        raise InvalidFilter(f"{path or 'filter'}: {exc.message}") from None


def _decode_condition(msg: pb.Condition, path: str, depth: int, limits: Limits) -> Condition:
    kind = msg.WhichOneof("kind")
    if kind is None:
        raise InvalidFilter(f"{path}: condition kind is not set")
    if kind == "filter":
        return _decode_filter(msg.filter, f"{path}.filter", depth + 1, limits)
    try:
        if kind == "has_id":
            limits.check("max_match_values", len(msg.has_id.ids), f"{path}: the number of ids")
            return HasId(frozenset(_decode_id(p, f"{path}.has_id.ids[{i}]")
                                   for i, p in enumerate(msg.has_id.ids)))
        if kind == "is_empty":
            return IsEmpty(msg.is_empty.key)
        if kind == "is_null":
            return IsNull(msg.is_null.key)
        return _decode_field(msg.field, f"{path}.field", limits)
    except InvalidFilter as exc:
        if exc.message.startswith(path):
            raise
        raise InvalidFilter(f"{path}.{kind}: {exc.message}") from None


def _decode_id(msg: pb.PointId, path: str) -> int | str:
    kind = msg.WhichOneof("kind")
    if kind is None:
        raise InvalidFilter(f"{path}: point id kind is not set")
    return msg.num if kind == "num" else msg.str


def _decode_field(msg: pb.FieldCondition, path: str, limits: Limits) -> Condition:
    kind = msg.WhichOneof("kind")
    if kind is None:
        raise InvalidFilter(f"{path}: field condition kind (match, range, values_count) is not set")
    where = f"{path}.{kind}"
    try:
        if kind == "range":
            bounds = {b: _filter_value(getattr(msg.range, b), f"{where}.{b}")
                      for b in _BOUNDS if msg.range.HasField(b)}
            return Range(msg.key, **bounds)
        if kind == "values_count":
            vc = msg.values_count
            return ValuesCount(msg.key, **{b: getattr(vc, b) for b in _BOUNDS if vc.HasField(b)})
        return _decode_match(msg.key, msg.match, where, limits)
    except InvalidFilter as exc:
        if exc.message.startswith(where):
            raise
        raise InvalidFilter(f"{where}: {exc.message}") from None


def _decode_match(key: str, msg: pb.Match, path: str, limits: Limits) -> Condition:
    kind = msg.WhichOneof("kind")
    if kind is None:
        raise InvalidFilter(f"{path}: match kind (value, any, except) is not set")
    if kind == "value":
        return Match(key, _filter_value(msg.value, f"{path}.value"))
    limits.check("max_match_values", len(getattr(msg, kind).values),
                 f"{path}.{kind}: the number of values")
    values = tuple(_filter_value(v, f"{path}.{kind}[{i}]")
              for i, v in enumerate(getattr(msg, kind).values))
    return MatchAny(key, values) if kind == "any" else MatchExcept(key, values)


def _filter_value(msg: pb.AttrValue, path: str) -> Any:
    try:
        return decode_value(msg)
    except InvalidAttributes as exc:
        raise InvalidFilter(f"{path}: {exc.message}") from None


# --------------------------------------------------------------------------------------
# Filters: encode
# --------------------------------------------------------------------------------------


def encode_filter(flt: Filter) -> pb.Filter:
    """The structured wire form of ``flt`` (``expr`` stays empty)."""
    return pb.Filter(
        must=[encode_condition(c) for c in flt.must],
        should=[encode_condition(c) for c in flt.should],
        must_not=[encode_condition(c) for c in flt.must_not],
        min_should=flt.min_should,
    )


def encode_condition(cond: Condition) -> pb.Condition:
    """One domain condition → ``Condition`` message."""
    if isinstance(cond, Filter):
        return pb.Condition(filter=encode_filter(cond))
    if isinstance(cond, HasId):
        ids = [pb.PointId(str=p) if isinstance(p, str) else pb.PointId(num=p)
               for p in sorted(cond.ids, key=lambda p: (isinstance(p, str), p))]
        return pb.Condition(has_id=pb.HasIdCondition(ids=ids))
    if isinstance(cond, IsEmpty):
        return pb.Condition(is_empty=pb.IsEmptyCondition(key=cond.key))
    if isinstance(cond, IsNull):
        return pb.Condition(is_null=pb.IsNullCondition(key=cond.key))
    field = pb.FieldCondition(key=cond.key)
    if isinstance(cond, Match):
        field.match.value.CopyFrom(encode_value(cond.value))
    elif isinstance(cond, MatchAny | MatchExcept):
        # `except` is a Python keyword: reach the field through getattr. SetInParent marks
        # the oneof as chosen even when the list is empty.
        values = getattr(field.match, "any" if isinstance(cond, MatchAny) else "except")
        values.SetInParent()
        values.values.extend(encode_value(v) for v in cond.values)
    elif isinstance(cond, Range):
        field.range.SetInParent()
        for name, bound in cond.bounds():
            getattr(field.range, name).CopyFrom(encode_value(bound))
    elif isinstance(cond, ValuesCount):
        field.values_count.SetInParent()
        for name, count in cond.bounds():
            setattr(field.values_count, name, count)
    else:  # pragma: no cover - the model has no other condition types
        raise TypeError(f"not a filter condition: {cond!r}")
    return pb.Condition(field=field)

