"""Build `sievedb.v1.Filter` messages in Python: ``F`` and small immutable expressions.

    from sievedb import F

    f = (F.eq("category", "cs.LG") & (F.field("year") >= 2020)
         & F.eq("authors", "Hinton") & ~F.eq("license", "none"))
    f.to_proto()          # sievedb.v1.Filter

Semantics are the server's (Qdrant's): a condition on a missing field is false except
``is_empty`` / ``is_null`` / ``count``; a list field matches if any element matches;
``F.except_(k, vs)`` (and ``F.field(k) != v``) is false when ``k`` is missing or null, and
true for a list with *some* element outside ``vs``; ``~F.any(k, vs)`` is the "none of, or
missing" form. Equality on a float value becomes the point range ``gte == lte == v``.

``&`` → must, ``|`` → should, ``~`` → must_not; nesting is preserved. ``F.expr(text)`` is a
server-parsed text expression; it can be combined with ``&`` (texts are joined into the
top-level ``expr`` field) and negated or ORed only with other texts. Python's ``and`` /
``or`` / ``not`` and chained comparisons cannot be overloaded: using them raises TypeError.

This module imports only protobuf/grpc/numpy, never the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import grpc
from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb._values import encode_value
from sievedb.errors import InvalidFilter

__all__ = ["Expr", "F", "FieldRef"]


def _bad(message: str) -> InvalidFilter:
    return InvalidFilter(message, code=grpc.StatusCode.INVALID_ARGUMENT, reason="INVALID_FILTER")


class Expr:
    """An immutable filter expression. Combine with ``&``, ``|``, ``~``; send `to_proto()`."""

    __slots__ = ("_op", "_parts", "_payload")

    def __init__(self, op: str, parts: tuple[Expr, ...] = (), payload: Any = None) -> None:
        # op: "cond" (payload: pb.Condition), "text" (payload: str), "and", "or", "not",
        # "at_least" (payload: int)
        self._op = op
        self._parts = parts
        self._payload = payload

    # --- combinators ---------------------------------------------------------------------

    def __and__(self, other: Expr) -> Expr:
        _check(other, "&")
        return Expr("and", _flatten("and", (self, other)))

    def __or__(self, other: Expr) -> Expr:
        _check(other, "|")
        return Expr("or", _flatten("or", (self, other)))

    def __invert__(self) -> Expr:
        if self._op == "not":
            return self._parts[0]
        return Expr("not", (self,))

    def __bool__(self) -> bool:
        raise TypeError("a filter expression has no truth value: combine with &, |, ~ "
                        "(not `and`, `or`, `not`, or chained comparisons)")

    def __repr__(self) -> str:
        return f"Expr({self.to_proto()!r})".replace("\n", " ")

    # --- wire ------------------------------------------------------------------------------

    def to_proto(self) -> pb.Filter:
        """The `sievedb.v1.Filter` for this expression."""
        if self._op == "text":
            return pb.Filter(expr=self._payload)
        if self._op == "cond":
            return pb.Filter(must=[self._payload])
        if self._op == "not":
            text = self._as_text()
            if text is not None:
                return pb.Filter(expr=text)
            return pb.Filter(must_not=[self._parts[0]._condition()])
        if self._op in ("or", "at_least"):
            text = self._as_text()
            if text is not None:
                return pb.Filter(expr=text)
            return pb.Filter(should=[p._condition() for p in self._parts],
                             min_should=self._payload or 0)
        # and: structured parts into must / must_not / one should group, texts into expr
        msg = pb.Filter()
        texts: list[str] = []
        for part in self._parts:
            if part._op == "text":
                texts.append(f"({part._payload})")
            elif part._op == "cond":
                msg.must.append(part._payload)
            elif part._op == "not" and part._as_text() is None:
                msg.must_not.append(part._parts[0]._condition())
            elif part._as_text() is not None:
                texts.append(f"({part._as_text()})")
            else:
                msg.must.append(part._condition())
        msg.expr = " and ".join(texts)
        return msg

    def _condition(self) -> pb.Condition:
        if self._op == "cond":
            return self._payload
        if self._has_text():
            raise _bad("F.expr(...) can be combined with | or ~ only with other F.expr(...) "
                       "texts, and nested only through & at the top level")
        return pb.Condition(filter=self.to_proto())

    def _has_text(self) -> bool:
        return self._op == "text" or any(p._has_text() for p in self._parts)

    def _as_text(self) -> str | None:
        """The whole expression as server text, when it consists only of texts."""
        if self._op == "text":
            return self._payload
        if self._op == "cond" or not self._parts:
            return None
        texts = [p._as_text() for p in self._parts]
        if any(t is None for t in texts):
            return None
        if self._op == "not":
            return f"not ({texts[0]})"
        if self._op == "at_least":
            return f"at_least({self._payload}, " + ", ".join(f"({t})" for t in texts) + ")"
        joiner = " and " if self._op == "and" else " or "
        return joiner.join(f"({t})" for t in texts)


def _check(other: object, op: str) -> None:
    if not isinstance(other, Expr):
        raise TypeError(f"cannot combine a filter expression with {type(other).__name__} "
                        f"using {op}")


def _flatten(op: str, parts: Iterable[Expr]) -> tuple[Expr, ...]:
    out: list[Expr] = []
    for part in parts:
        out.extend(part._parts if part._op == op else (part,))
    return tuple(out)


def _field(key: str, **kind: Any) -> Expr:
    if not isinstance(key, str) or not key:
        raise _bad(f"field key must be a non-empty string, got {key!r}")
    return Expr("cond", payload=pb.Condition(field=pb.FieldCondition(key=key, **kind)))


def _match_value(value: Any) -> pb.AttrValue:
    if value is None or isinstance(value, list | tuple):
        raise _bad(f"cannot match {value!r}: use F.is_null / F.any for nulls and lists")
    return encode_value(value)


def _values(values: Iterable[Any], what: str) -> pb.ListValue:
    if isinstance(values, str | bytes):
        raise _bad(f"{what} takes a list of values, not a single string")
    items = list(values)
    if any(isinstance(v, float) for v in items):
        raise _bad(f"{what} cannot match floats for equality; use F.range")
    return pb.ListValue(values=[_match_value(v) for v in items])


def _bounds(what: str, **bounds: Any) -> dict[str, Any]:
    given = {k: v for k, v in bounds.items() if v is not None}
    if not given:
        raise _bad(f"{what} needs at least one of gt, gte, lt, lte")
    return given


class F:
    """Constructors of filter conditions (all return `Expr`)."""

    @staticmethod
    def eq(key: str, value: Any) -> Expr:
        """``key`` equals ``value`` (a list field: contains it). Floats → point range."""
        if isinstance(value, float):
            return F.range(key, gte=value, lte=value)
        return _field(key, match=pb.Match(value=_match_value(value)))

    @staticmethod
    def any(key: str, values: Iterable[Any]) -> Expr:
        """``key`` equals one of ``values``."""
        return _field(key, match=pb.Match(any=_values(values, "F.any")))

    @staticmethod
    def except_(key: str, values: Iterable[Any]) -> Expr:
        """``key`` has a (non-null) value outside ``values``; false when missing or null."""
        return _field(key, match=pb.Match(**{"except": _values(values, "F.except_")}))

    @staticmethod
    def range(key: str, *, gt: Any = None, gte: Any = None, lt: Any = None,
              lte: Any = None) -> Expr:
        """Numeric (int/float) or datetime bounds; at least one bound."""
        given = _bounds(f"F.range({key!r})", gt=gt, gte=gte, lt=lt, lte=lte)
        for name, bound in given.items():
            if isinstance(bound, bool) or not isinstance(bound, int | float | datetime):
                raise _bad(f"F.range bound {name} must be a number or a datetime, "
                           f"got {type(bound).__name__}")
        return _field(key, range=pb.Range(**{k: encode_value(v) for k, v in given.items()}))

    @staticmethod
    def count(key: str, *, gt: int | None = None, gte: int | None = None,
              lt: int | None = None, lte: int | None = None) -> Expr:
        """Bounds on the number of values (0 when missing or null, 1 for a scalar)."""
        given = _bounds(f"F.count({key!r})", gt=gt, gte=gte, lt=lt, lte=lte)
        for name, bound in given.items():
            if isinstance(bound, bool) or not isinstance(bound, int) or bound < 0:
                raise _bad(f"F.count bound {name} must be a non-negative integer")
        return _field(key, values_count=pb.ValuesCount(**given))

    @staticmethod
    def is_empty(key: str) -> Expr:
        """``key`` is missing, null or an empty list."""
        return Expr("cond", payload=pb.Condition(is_empty=pb.IsEmptyCondition(key=key)))

    @staticmethod
    def is_null(key: str) -> Expr:
        """``key`` is present with an explicit null."""
        return Expr("cond", payload=pb.Condition(is_null=pb.IsNullCondition(key=key)))

    @staticmethod
    def has_id(ids: Iterable[int | str]) -> Expr:
        """The point id is one of ``ids``."""
        if isinstance(ids, str | int):
            ids = [ids]
        msgs = []
        for pid in ids:
            if isinstance(pid, str):
                msgs.append(pb.PointId(str=pid))
            elif isinstance(pid, int) and not isinstance(pid, bool) and 0 <= pid < 2**64:
                msgs.append(pb.PointId(num=pid))
            else:
                raise _bad(f"point id {pid!r} must be an unsigned 64-bit integer or a string")
        return Expr("cond", payload=pb.Condition(has_id=pb.HasIdCondition(ids=msgs)))

    @staticmethod
    def expr(text: str) -> Expr:
        """A text expression parsed by the server, e.g. ``'year >= 2020 and x is null'``."""
        if not isinstance(text, str) or not text.strip():
            raise _bad("F.expr needs a non-empty text expression")
        return Expr("text", payload=text)

    @staticmethod
    def at_least(n: int, *exprs: Expr) -> Expr:
        """At least ``n`` of ``exprs`` hold (Qdrant's min_should)."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(exprs):
            raise _bad(f"F.at_least needs 1 <= n <= {len(exprs)}, got {n!r}")
        for e in exprs:
            _check(e, "F.at_least")
        return Expr("at_least", tuple(exprs), n)

    @staticmethod
    def field(key: str) -> FieldRef:
        """A field reference supporting ``== != < <= > >=`` and a few methods."""
        return FieldRef(key)


class FieldRef:
    """``F.field("year") >= 2020``; ``!=`` is `F.except_` (false when the field is missing)."""

    __slots__ = ("key",)
    __hash__ = None  # type: ignore[assignment]  # == builds an Expr, so no hashing

    def __init__(self, key: str) -> None:
        self.key = key

    def __eq__(self, value: object) -> Expr:  # type: ignore[override]
        return F.eq(self.key, value)

    def __ne__(self, value: object) -> Expr:  # type: ignore[override]
        if isinstance(value, float):
            return F.range(self.key, lt=value) | F.range(self.key, gt=value)
        return F.except_(self.key, [value])

    def __lt__(self, value: Any) -> Expr:
        return F.range(self.key, lt=value)

    def __le__(self, value: Any) -> Expr:
        return F.range(self.key, lte=value)

    def __gt__(self, value: Any) -> Expr:
        return F.range(self.key, gt=value)

    def __ge__(self, value: Any) -> Expr:
        return F.range(self.key, gte=value)

    def isin(self, values: Iterable[Any]) -> Expr:
        return F.any(self.key, values)

    def not_in(self, values: Iterable[Any]) -> Expr:
        return F.except_(self.key, values)

    def between(self, low: Any, high: Any) -> Expr:
        """Inclusive at both ends."""
        return F.range(self.key, gte=low, lte=high)

    def contains(self, value: Any) -> Expr:
        """A list field contains ``value`` (same as ``==``)."""
        return F.eq(self.key, value)

    def is_null(self) -> Expr:
        return F.is_null(self.key)

    def is_empty(self) -> Expr:
        return F.is_empty(self.key)
