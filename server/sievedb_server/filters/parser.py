"""The filter expression language: a hand-written tokenizer and recursive-descent parser.

``parse(text) -> Filter``. Meant for people and the CLI; the wire's structured clauses and
this language produce the same model. Grammar (keywords are case-insensitive)::

    expr       := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*                  precedence: not > and > or
    unary      := "not" unary | primary
    primary    := "(" or_expr ")" | "true"                         "true": matches all
                | "at_least" "(" INT "," or_expr ("," or_expr)* ")"   ≥ N of the operands
                | field ("==" | "!=" | "<" | "<=" | ">" | ">=") literal
                | field ["not"] "in" "[" [literal ("," literal)*] "]"
                | field "between" literal "and" literal            inclusive both ends
                | field "is" ["not"] ("null" | "empty")
                | literal ["not"] "in" field                         list field contains
                | "count" "(" field ")" ("==" | "!=" | "<" | "<=" | ">" | ">=") INT
                | "id" ("==" | "!=") id | "id" ["not"] "in" "[" id ("," id)* "]"
    field      := IDENT | `backquoted`      IDENT: a letter or _, then letters, digits, _ or .
    literal    := STRING | INT | FLOAT | "true" | "false" | "null"
                | "datetime" "(" STRING ")"                          ISO 8601; naive → UTC

Strings take double or single quotes with escapes ``\\" \\' \\\\ \\n \\t \\r \\uXXXX``;
backquoted names take ``\\``` and ``\\\\``. To use a keyword (``id``, ``count``, ``and``...) as
a field name, backquote it. Datetimes are written ``datetime("2023-01-01T00:00:00Z")``.

What each form means (see reference.py for the condition semantics):

| expression              | model                                       |
|-------------------------|---------------------------------------------|
| ``x == v``              | Match(x, v); float v → Range(x, gte=v, lte=v) |
| ``x != v``              | MatchExcept(x, [v]): false when x is missing or null (see below) |
| ``x < v`` etc.          | Range (v: number or datetime)               |
| ``x in [a, b]``         | MatchAny (floats become point ranges, ORed)  |
| ``x not in [a, b]``     | MatchExcept (no floats)                     |
| ``"v" in x``            | Match(x, "v") — a list field contains v     |
| ``"v" not in x``        | not Match(x, "v") — true when x is missing   |
| ``x is null``           | IsNull(x);  ``is not null`` = not IsNull (true when x is missing) |
| ``x is empty``          | IsEmpty(x); ``is not empty`` = x has at least one value |
| ``count(x) >= 3``       | ValuesCount                                 |
| ``id in [1, "a"]``      | HasId                                       |
| ``not e``               | Filter(must_not=[e])                        |

Why ``x != v`` is MatchExcept and not ``not (x == v)``: as in SQL, a missing or null value is
not "different from v", and it is Qdrant's own reading of match-except. Write
``not (x == v)`` to include points without x. For a list field, ``x != v`` holds when some
element differs from v (Qdrant's rule); ``not (v in x)`` when no element equals v. A float v
becomes ``x < v or x > v``.

Errors raise `InvalidFilter` whose message names the problem, the 1-based column and shows
the expression with a caret under it, e.g. ``expected a value after '>=' at column 17``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from sievedb_server.errors import InvalidFilter, RequestTooLarge
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
    not_,
    or_,
)
from sievedb_server.limits import DEFAULT_LIMITS, Limits
from sievedb_server.names import key_problem

__all__ = ["MAX_EXPR_CHARS", "parse"]

MAX_EXPR_CHARS = DEFAULT_LIMITS.max_filter_expr_chars
_DIGITS = frozenset("0123456789")  # str.isdigit() also admits '²' and other non-decimals
_MAX_INT_DIGITS = 20  # more cannot be a signed 64-bit integer (and int() refuses > 4300)
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

_RESERVED = frozenset({"and", "or", "not", "in", "between", "is", "null", "empty", "true", "false"})
_CMP = ("==", "!=", "<", "<=", ">", ">=")
_RANGE_OF = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "/": "/"}


@dataclass(frozen=True)
class _Token:
    kind: str  # ident | qident | string | int | float | op | ( ) [ ] , | eof
    text: str  # source text (for ident/op: itself; for string/qident: the decoded value)
    pos: int  # 0-based offset of the token's first character
    value: Any = None

    def is_kw(self, *words: str) -> bool:
        return self.kind == "ident" and self.text.lower() in words

    def describe(self) -> str:
        if self.kind == "eof":
            return "the end of the expression"
        if self.kind == "string":
            return f"string {self.value!r}"
        return f"'{self.text}'"


def _fail(text: str, message: str, pos: int) -> NoReturn:
    """Raise InvalidFilter with the 1-based column (and line, if several) and a caret."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : len(text) if line_end < 0 else line_end].replace("\t", " ")
    column = pos - line_start + 1
    where = f"at column {column}"
    if "\n" in text:
        where += f" of line {text.count(chr(10), 0, pos) + 1}"
    raise InvalidFilter(f"{message} {where}\n  {line}\n  {' ' * (column - 1)}^")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch.isalpha() or ch == "_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "_."):
                j += 1
            tokens.append(_Token("ident", text[i:j], i))
            i = j
        elif ch in _DIGITS or (ch == "-" and i + 1 < n and text[i + 1] in _DIGITS):
            i = _number(text, i, tokens)
        elif ch in "\"'":
            i = _string(text, i, tokens)
        elif ch == "`":
            i = _backquoted(text, i, tokens)
        elif text.startswith(("==", "!=", "<=", ">="), i):
            tokens.append(_Token("op", text[i : i + 2], i))
            i += 2
        elif ch in "<>":
            tokens.append(_Token("op", ch, i))
            i += 1
        elif ch in "()[],":
            tokens.append(_Token(ch, ch, i))
            i += 1
        elif ch == "=":
            _fail(text, "unexpected '=' (use '==' to compare)", i)
        elif ch == "!":
            _fail(text, "unexpected '!' (use '!=' or 'not')", i)
        elif ch in "&|":
            word = "and" if ch == "&" else "or"
            _fail(text, f"unexpected '{ch}' (use '{word}')", i)
        else:
            _fail(text, f"unexpected character {ch!r}", i)
    tokens.append(_Token("eof", "", n))
    return tokens


def _number(text: str, start: int, tokens: list[_Token]) -> int:
    j = start + 1
    n = len(text)
    while j < n and text[j] in _DIGITS:
        j += 1
    is_float = False
    if j < n and text[j] == "." and j + 1 < n and text[j + 1] in _DIGITS:
        is_float = True
        j += 1
        while j < n and text[j] in _DIGITS:
            j += 1
    if j < n and text[j] in "eE":
        k = j + 1
        if k < n and text[k] in "+-":
            k += 1
        if k < n and text[k] in _DIGITS:
            is_float = True
            j = k
            while j < n and text[j] in _DIGITS:
                j += 1
    if j < n and (text[j].isalnum() or text[j] in "_."):
        _fail(text, f"malformed number {text[start:j + 1]!r}", start)
    raw = text[start:j]
    if is_float:
        value: int | float = float(raw)
        if not math.isfinite(value):
            _fail(text, f"number {raw} is out of range", start)
        tokens.append(_Token("float", raw, start, value))
    else:
        if len(raw.lstrip("-").lstrip("0")) > _MAX_INT_DIGITS:
            _fail(text, f"integer {raw[:24]}... is outside the signed 64-bit range", start)
        tokens.append(_Token("int", raw, start, int(raw)))
    return j


def _string(text: str, start: int, tokens: list[_Token]) -> int:
    quote = text[start]
    out: list[str] = []
    j = start + 1
    n = len(text)
    while j < n and text[j] != quote:
        ch = text[j]
        if ch == "\n":
            break
        if ch == "\\":
            if j + 1 >= n:
                break
            esc = text[j + 1]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                j += 2
                continue
            if esc == "u":
                digits = text[j + 2 : j + 6]
                if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
                    out.append(chr(int(digits, 16)))
                    j += 6
                    continue
                _fail(text, "\\u must be followed by 4 hex digits", j)
            _fail(text, f"unknown escape '\\{esc}' in string", j)
        out.append(ch)
        j += 1
    if j >= n or text[j] != quote:
        _fail(text, "unterminated string", start)
    value = "".join(out)
    tokens.append(_Token("string", text[start : j + 1], start, value))
    return j + 1


def _backquoted(text: str, start: int, tokens: list[_Token]) -> int:
    out: list[str] = []
    j = start + 1
    n = len(text)
    while j < n and text[j] != "`":
        if text[j] == "\\" and j + 1 < n and text[j + 1] in "`\\":
            out.append(text[j + 1])
            j += 2
            continue
        out.append(text[j])
        j += 1
    if j >= n:
        _fail(text, "unterminated backquoted field name", start)
    if not out:
        _fail(text, "empty field name", start)
    tokens.append(_Token("qident", text[start : j + 1], start, "".join(out)))
    return j + 1


class _Parser:
    def __init__(self, text: str, limits: Limits) -> None:
        self.text = text
        self.limits = limits
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    # --- token helpers -----------------------------------------------------------------

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def fail(self, message: str, tok: _Token | None = None) -> NoReturn:
        _fail(self.text, message, (tok or self.tok).pos)

    def expect(self, kind: str, what: str, after: _Token | None = None) -> _Token:
        if self.tok.kind != kind:
            context = f" after {after.describe()}" if after is not None else ""
            self.fail(f"expected {what}{context}, found {self.tok.describe()}")
        return self.advance()

    def expect_kw(self, word: str, after: _Token) -> _Token:
        if not self.tok.is_kw(word):
            self.fail(f"expected '{word}' after {after.describe()}, found {self.tok.describe()}")
        return self.advance()

    # --- grammar -------------------------------------------------------------------------

    def parse(self) -> Filter:
        if self.tok.kind == "eof":
            self.fail("empty filter expression")
        result = self.or_expr()
        if self.tok.kind != "eof":
            if self.tok.kind == ")":
                self.fail("unbalanced ')'")
            self.fail(f"expected 'and', 'or' or the end, found {self.tok.describe()}")
        return check_limits(and_(result), self.limits)

    def nest(self, tok: _Token) -> None:
        self.depth += 1
        limit = self.limits.max_filter_depth
        if self.depth > limit:
            try:
                self.fail(f"expression is nested deeper than {limit} levels, the limit "
                          f"(max_filter_depth),", tok)
            except InvalidFilter as exc:  # a size limit: RESOURCE_EXHAUSTED, with the column
                raise RequestTooLarge(exc.message) from None

    def or_expr(self) -> Condition:
        parts = [self.and_expr()]
        while self.tok.is_kw("or"):
            op = self.advance()
            self.require_operand(op)
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else or_(*parts)

    def and_expr(self) -> Condition:
        parts = [self.unary()]
        while self.tok.is_kw("and"):
            op = self.advance()
            self.require_operand(op)
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else and_(*parts)

    def require_operand(self, op: _Token) -> None:
        if self.tok.kind == "eof" or self.tok.kind == ")" or self.tok.is_kw("and", "or"):
            self.fail(f"expected a condition after '{op.text}', found {self.tok.describe()}")

    def unary(self) -> Condition:
        if self.tok.is_kw("not") and not self.peek().is_kw("in"):
            op = self.advance()
            self.nest(op)
            self.require_operand(op)
            inner = self.unary()
            self.depth -= 1
            return not_(inner)
        return self.primary()

    def primary(self) -> Condition:
        tok = self.tok
        if tok.kind == "(":
            self.advance()
            self.nest(tok)
            if self.tok.kind == ")":
                self.fail("empty parentheses")
            inner = self.or_expr()
            if self.tok.kind != ")":
                self.fail(f"expected ')' to close the '(' at column {tok.pos + 1}, "
                          f"found {self.tok.describe()}")
            self.advance()
            self.depth -= 1
            return inner
        if tok.is_kw("true") and not self._literal_in_follows(1):
            self.advance()
            return Filter()
        if tok.is_kw("at_least") and self.peek().kind == "(":
            return self.at_least()
        if tok.is_kw("count") and self.peek().kind == "(":
            return self.count()
        if tok.is_kw("id") and (self.peek().kind == "op" or self.peek().is_kw("in", "not")):
            return self.has_id()
        if self._starts_literal(tok):
            return self.contains()
        return self.field_predicate()

    def _literal_in_follows(self, ahead: int) -> bool:
        nxt = self.peek(ahead)
        return nxt.is_kw("in") or (nxt.is_kw("not") and self.peek(ahead + 1).is_kw("in"))

    def _starts_literal(self, tok: _Token) -> bool:
        if tok.kind in ("string", "int", "float"):
            return True
        if tok.is_kw("true", "false", "null"):
            return True
        return tok.is_kw("datetime") and self.peek().kind == "("

    def field(self, after: _Token | None = None) -> tuple[str, _Token]:
        tok = self.tok
        if tok.kind == "qident" or (tok.kind == "ident" and tok.text.lower() not in _RESERVED):
            name = tok.value if tok.kind == "qident" else tok.text
            problem = key_problem(name)
            if problem is not None:
                self.fail(f"field name {problem}")
            self.advance()
            return name, tok
        context = f" after {after.describe()}" if after is not None else ""
        if tok.kind == "ident":
            self.fail(f"expected a field name{context}, found keyword '{tok.text}' "
                      f"(backquote it to use it as a field: `{tok.text}`)")
        self.fail(f"expected a field name{context}, found {tok.describe()}")

    def literal(self, after: _Token) -> tuple[Any, _Token]:
        tok = self.tok
        if tok.kind in ("string", "int", "float"):
            self.advance()
            return tok.value, tok
        if tok.is_kw("true", "false"):
            self.advance()
            return tok.text.lower() == "true", tok
        if tok.is_kw("null"):
            self.advance()
            return None, tok
        if tok.is_kw("datetime") and self.peek().kind == "(":
            self.advance()
            paren = self.advance()
            arg = self.expect("string", "a quoted ISO 8601 date", after=paren)
            self.expect(")", "')'", after=arg)
            return self.parse_datetime(arg), tok
        if tok.kind == "[":
            self.fail(f"a list is not allowed after {after.describe()}")
        self.fail(f"expected a value after {after.describe()}, found {tok.describe()}")

    def parse_datetime(self, tok: _Token) -> datetime:
        try:
            value = datetime.fromisoformat(tok.value)
        except ValueError:
            self.fail(f"invalid datetime {tok.value!r} (use ISO 8601, e.g. "
                      f"\"2023-01-31T12:00:00Z\")", tok)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    def value_list(self, after: _Token) -> list[tuple[Any, _Token]]:
        self.expect("[", "'[' starting a list", after=after)
        items: list[tuple[Any, _Token]] = []
        if self.tok.kind == "]":
            self.advance()
            return items
        while True:
            prev = self.tokens[self.i - 1]
            items.append(self.literal(prev))
            if self.tok.kind == ",":
                self.advance()
                continue
            if self.tok.kind == "]":
                self.advance()
                return items
            self.fail(f"expected ',' or ']' in the list, found {self.tok.describe()}")

    # --- predicates ----------------------------------------------------------------------

    def field_predicate(self) -> Condition:
        key, key_tok = self.field()
        tok = self.tok
        if tok.kind == "op":
            self.advance()
            value, vtok = self.literal(tok)
            return self.compare(key, tok, value, vtok)
        if tok.is_kw("in") or (tok.is_kw("not") and self.peek().is_kw("in")):
            negate = tok.is_kw("not")
            if negate:
                self.advance()
            in_tok = self.advance()
            return self.membership(key, negate, self.value_list(in_tok))
        if tok.is_kw("between"):
            self.advance()
            low, low_tok = self.literal(tok)
            and_tok = self.expect_kw("and", low_tok)
            high, high_tok = self.literal(and_tok)
            return self.between(key, low, low_tok, high, high_tok)
        if tok.is_kw("is"):
            self.advance()
            negate = self.tok.is_kw("not")
            if negate:
                self.advance()
            what = self.tok
            if what.is_kw("null"):
                self.advance()
                cond: Condition = IsNull(key)
            elif what.is_kw("empty"):
                self.advance()
                cond = IsEmpty(key)
            else:
                self.fail(f"expected 'null' or 'empty' after 'is', found {what.describe()}")
            return not_(cond) if negate else cond
        self.fail(f"expected an operator (==, !=, <, <=, >, >=, in, not in, between, is) "
                  f"after field {key_tok.text}, found {tok.describe()}")

    def scalar(self, value: Any, tok: _Token, op: _Token) -> Any:
        if value is None:
            self.fail(f"null cannot be compared with '{op.text}' (use 'is null' / "
                      f"'is not null')", tok)
        if isinstance(value, int) and not isinstance(value, bool) and not (
                _I64_MIN <= value <= _I64_MAX):
            self.fail(f"integer {value} is outside the signed 64-bit range", tok)
        return value

    def compare(self, key: str, op: _Token, value: Any, vtok: _Token) -> Condition:
        value = self.scalar(value, vtok, op)
        if op.text in _RANGE_OF:
            if isinstance(value, bool) or not isinstance(value, int | float | datetime):
                self.fail(f"'{op.text}' needs a number or a datetime, found "
                          f"{vtok.describe()}", vtok)
            return Range(key, **{_RANGE_OF[op.text]: value})
        if isinstance(value, float):
            if op.text == "==":
                return Range(key, gte=value, lte=value)
            return or_(Range(key, lt=value), Range(key, gt=value))
        return Match(key, value) if op.text == "==" else MatchExcept(key, (value,))

    def membership(self, key: str, negate: bool, items: list[tuple[Any, _Token]]) -> Condition:
        op = self.tokens[self.i - 1]
        values = [self.scalar(v, t, op) for v, t in items]
        floats = [v for v in values if isinstance(v, float)]
        if negate:
            if floats:
                self.fail("float values are not supported in 'not in' (use ranges)",
                          items[values.index(floats[0])][1])
            return MatchExcept(key, tuple(values))
        others = [v for v in values if not isinstance(v, float)]
        if not floats:
            return MatchAny(key, tuple(others))
        parts: list[Condition] = [Range(key, gte=v, lte=v) for v in floats]
        if others:
            parts.insert(0, MatchAny(key, tuple(others)))
        return or_(*parts)

    def between(self, key: str, low: Any, low_tok: _Token, high: Any,
                high_tok: _Token) -> Condition:
        for value, tok in ((low, low_tok), (high, high_tok)):
            if isinstance(value, bool) or not isinstance(value, int | float | datetime):
                self.fail(f"'between' needs numbers or datetimes, found {tok.describe()}", tok)
        if isinstance(low, datetime) != isinstance(high, datetime):
            self.fail("'between' bounds must both be numbers or both be datetimes", high_tok)
        if low > high:
            self.fail(f"'between' bounds are reversed: {low_tok.text} is greater than "
                      f"{high_tok.text}", low_tok)
        return Range(key, gte=low, lte=high)

    def contains(self) -> Condition:
        value, vtok = self.literal(self.tok)
        negate = self.tok.is_kw("not")
        if negate:
            self.advance()
        if not self.tok.is_kw("in"):
            self.fail(f"expected 'in' after the value {vtok.text} (a value on the left "
                      f"must be followed by 'in <field>')")
        in_tok = self.advance()
        key, _ = self.field(after=in_tok)
        value = self.scalar(value, vtok, in_tok)
        cond: Condition = (Range(key, gte=value, lte=value) if isinstance(value, float)
                           else Match(key, value))
        return not_(cond) if negate else cond

    def at_least(self) -> Condition:
        name = self.advance()
        paren = self.advance()
        self.nest(paren)
        num = self.tok
        if num.kind != "int" or num.value < 1:
            self.fail(f"expected a positive integer after '{name.text}(', found "
                      f"{num.describe()}")
        self.advance()
        operands: list[Condition] = []
        while self.tok.kind == ",":
            comma = self.advance()
            self.require_operand(comma)
            operands.append(self.or_expr())
        if self.tok.kind != ")":
            self.fail(f"expected ',' or ')' in {name.text}(...), found {self.tok.describe()}")
        self.advance()
        self.depth -= 1
        if num.value > len(operands):
            self.fail(f"{name.text}({num.value}, ...) has only {len(operands)} operand(s)",
                      num)
        return Filter(should=tuple(operands), min_should=num.value)

    def count(self) -> Condition:
        count_tok = self.advance()
        paren = self.advance()
        key, key_tok = self.field(after=paren)
        self.expect(")", "')'", after=key_tok)
        op = self.tok
        if op.kind != "op":
            self.fail(f"expected a comparison after {count_tok.text}({key}), "
                      f"found {op.describe()}")
        self.advance()
        num = self.tok
        if num.kind != "int" or num.value < 0:
            self.fail(f"expected a non-negative integer after '{op.text}', found "
                      f"{num.describe()}")
        self.advance()
        n = num.value
        if op.text == "==":
            return ValuesCount(key, gte=n, lte=n)
        if op.text == "!=":
            return or_(ValuesCount(key, lt=n), ValuesCount(key, gt=n))
        return ValuesCount(key, **{_RANGE_OF[op.text]: n})

    def has_id(self) -> Condition:
        id_tok = self.advance()
        tok = self.tok
        if tok.kind == "op":
            if tok.text not in ("==", "!="):
                self.fail(f"'{tok.text}' does not apply to the point id (use ==, !=, in, "
                          f"not in; backquote `id` for a field named id)")
            self.advance()
            value, vtok = self.literal(tok)
            cond = HasId(frozenset([self.point_id(value, vtok)]))
            return cond if tok.text == "==" else not_(cond)
        negate = tok.is_kw("not")
        if negate:
            self.advance()
        in_tok = self.expect_kw("in", self.tokens[self.i - 1] if negate else id_tok)
        ids = frozenset(self.point_id(v, t) for v, t in self.value_list(in_tok))
        return not_(HasId(ids)) if negate else HasId(ids)

    def point_id(self, value: Any, tok: _Token) -> int | str:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64:
            return value
        self.fail(f"a point id must be an unsigned 64-bit integer or a non-empty string, "
                  f"found {tok.describe()}", tok)


def parse(text: str, limits: Limits = DEFAULT_LIMITS) -> Filter:
    """Parse an expression into a `Filter`.

    Raises `InvalidFilter` (with the column) for a malformed expression and `RequestTooLarge`
    when it exceeds a limit of `limits` (length, nesting, nodes, values in one list); nothing
    else, whatever the input (the fuzz tests hold it to that).
    """
    if not isinstance(text, str):
        raise InvalidFilter(f"a filter expression must be a string, got {type(text).__name__}")
    limits.check("max_filter_expr_chars", len(text))
    return _Parser(text, limits).parse()
