"""The expression language: well-formed inputs, precedence, and precise error messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sievedb_server.errors import InvalidFilter, RequestTooLarge
from sievedb_server.filters.model import (
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
from sievedb_server.filters.parser import MAX_EXPR_CHARS, parse
from sievedb_server.filters.reference import matches

PAPERS = {
    1: {"category": "cs.LG", "year": 2021, "authors": ["Hinton", "LeCun"], "license": "cc"},
    2: {"category": "cs.LG", "year": 2019, "authors": ["Hinton"], "license": "cc"},
    3: {"category": "cs.CV", "year": 2022, "authors": ["Hinton"], "license": "cc"},
    4: {"category": "cs.LG", "year": 2023, "authors": ["Bengio"], "license": "none"},
    5: {"category": "cs.LG", "year": 2024, "authors": ["Hinton"]},
    6: {"category": "cs.LG", "year": 2024, "authors": ["Hinton"], "license": "none"},
}


def hits(text: str, points: dict[int, dict] = PAPERS) -> set[int]:  # type: ignore[type-arg]
    flt = parse(text)
    return {pid for pid, attrs in points.items() if matches(flt, pid, attrs)}


def test_example_from_the_brief() -> None:
    text = (
        'category == "cs.LG" and year >= 2020 and "Hinton" in authors '
        'and not (license == "none")'
    )
    flt = parse(text)
    assert flt == Filter(
        must=(Match("category", "cs.LG"), Range("year", gte=2020), Match("authors", "Hinton")),
        must_not=(Match("license", "none"),),
    )
    assert hits(text) == {1, 5}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a == 1", Filter(must=(Match("a", 1),))),
        ("a != 'x'", Filter(must=(MatchExcept("a", ["x"]),))),
        ("a < 1.5", Filter(must=(Range("a", lt=1.5),))),
        ("a <= -2", Filter(must=(Range("a", lte=-2),))),
        ("a > 1e3", Filter(must=(Range("a", gt=1000.0),))),
        ("a >= 0", Filter(must=(Range("a", gte=0),))),
        ("a == 2.5", Filter(must=(Range("a", gte=2.5, lte=2.5),))),
        ("a in [1, 'x', true]", Filter(must=(MatchAny("a", [1, "x", True]),))),
        ("a not in [1, 2]", Filter(must=(MatchExcept("a", [1, 2]),))),
        ("a in []", Filter(must=(MatchAny("a", []),))),
        ("a between 1 and 5", Filter(must=(Range("a", gte=1, lte=5),))),
        ("a is null", Filter(must=(IsNull("a"),))),
        ("a is not null", Filter(must_not=(IsNull("a"),))),
        ("a is empty", Filter(must=(IsEmpty("a"),))),
        ("a IS NOT EMPTY", Filter(must_not=(IsEmpty("a"),))),
        ("count(tags) >= 3", Filter(must=(ValuesCount("tags", gte=3),))),
        ("count(tags) == 0", Filter(must=(ValuesCount("tags", gte=0, lte=0),))),
        ("id in [1, \"a\"]", Filter(must=(HasId(frozenset({1, "a"})),))),
        ("id == 7", Filter(must=(HasId(frozenset({7})),))),
        ("id not in [7]", Filter(must_not=(HasId(frozenset({7})),))),
        ("`id` == 7", Filter(must=(Match("id", 7),))),
        ("`my field` == 'a'", Filter(must=(Match("my field", "a"),))),
        ("`we\\`ird` == 1", Filter(must=(Match("we`ird", 1),))),
        ("meta.source == 'x'", Filter(must=(Match("meta.source", "x"),))),
        ("'x' not in tags", Filter(must_not=(Match("tags", "x"),))),
        ("a == \"tab\\there \\\"q\\\" \\u00e9\"",
         Filter(must=(Match("a", 'tab\there "q" \u00e9'),))),
        ("a == 'it\\'s'", Filter(must=(Match("a", "it's"),))),
        ("flag == false", Filter(must=(Match("flag", False),))),
        ("a == 1 and b == 2", Filter(must=(Match("a", 1), Match("b", 2)))),
        ("a == 1 or b == 2", Filter(should=(Match("a", 1), Match("b", 2)))),
        ("not a == 1", Filter(must_not=(Match("a", 1),))),
        ("not not a == 1", Filter(must=(Match("a", 1),))),
        ("true", Filter()),
        ("at_least(2, a == 1, b == 2, c == 3)",
         Filter(should=(Match("a", 1), Match("b", 2), Match("c", 3)), min_should=2)),
        ("a == 1 AND b == 2 Or c == 3",
         Filter(should=(Filter(must=(Match("a", 1), Match("b", 2))), Match("c", 3)))),
    ],
)
def test_well_formed(text: str, expected: Filter) -> None:
    assert parse(text) == expected


def test_datetimes() -> None:
    d = datetime(2023, 1, 1, tzinfo=UTC)
    assert parse('t >= datetime("2023-01-01")') == Filter(must=(Range("t", gte=d),))
    assert parse("t < datetime('2023-01-01T00:00:00Z')") == Filter(must=(Range("t", lt=d),))
    plus2 = datetime(2023, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert parse('t == datetime("2023-01-01T02:00:00+02:00")') == Filter(
        must=(Match("t", plus2),)
    )
    assert parse('t == datetime("2023-01-01T02:00:00+02:00")') == Filter(must=(Match("t", d),))
    flt = parse('t between datetime("2022-12-31") and datetime("2023-01-02")')
    assert matches(flt, 1, {"t": d}) and not matches(flt, 1, {"t": d + timedelta(days=2)})


def test_precedence_not_and_or() -> None:
    points = {
        i: {"a": a, "b": b, "c": c}
        for i, (a, b, c) in enumerate(
            (a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)
        )
    }

    def truth(pred) -> set[int]:  # type: ignore[no-untyped-def]
        return {i for i, p in points.items() if pred(p["a"] == 1, p["b"] == 1, p["c"] == 1)}

    cases = {
        "a == 1 or b == 1 and c == 1": lambda a, b, c: a or (b and c),
        "a == 1 and b == 1 or c == 1": lambda a, b, c: (a and b) or c,
        "not a == 1 and b == 1": lambda a, b, c: (not a) and b,
        "not a == 1 or b == 1": lambda a, b, c: (not a) or b,
        "not (a == 1 or b == 1)": lambda a, b, c: not (a or b),
        "(a == 1 or b == 1) and c == 1": lambda a, b, c: (a or b) and c,
        "a == 1 and not (b == 1 and not c == 1)": lambda a, b, c: a and not (b and not c),
        "at_least(2, a == 1, b == 1, c == 1)": lambda a, b, c: a + b + c >= 2,
        "not at_least(2, a == 1, b == 1, c == 1) or a == 1": lambda a, b, c: a + b + c < 2 or a,
        "a != 1": lambda a, b, c: not a,
    }
    for text, pred in cases.items():
        assert hits(text, points) == truth(pred), text


def test_operators_by_evaluation() -> None:
    assert hits("year between 2021 and 2023") == {1, 3, 4}
    assert hits("license != 'none'") == {1, 2, 3}  # missing license is not "different"
    assert hits("not license == 'none'") == {1, 2, 3, 5}
    assert hits("license is empty") == {5}
    assert hits("count(authors) >= 2") == {1}
    assert hits("'Bengio' in authors or id in [2, 3]") == {2, 3, 4}
    assert hits("authors in ['LeCun', 'Bengio']") == {1, 4}
    assert hits("year == 2024.0") == {5, 6}
    assert hits("year in [2019, 2024.0]") == {2, 5, 6}
    assert hits("year != 2024.0") == {1, 2, 3, 4}


MALFORMED = [
    # (text, expected message fragment, expected column)
    ("year >= ", "expected a value after '>='", 9),
    ("category == \"cs.LG\" and year >=", "expected a value after '>='", 32),
    ("a == 1 and", "expected a condition after 'and'", 11),
    ("a == 1 or or b == 2", "expected a condition after 'or'", 11),
    ("(a == 1", "expected ')' to close the '(' at column 1", 8),
    ("a == 1)", "unbalanced ')'", 7),
    ("a = 1", "use '==' to compare", 3),
    ("a == 'abc", "unterminated string", 6),
    ("a == 'a\\qb'", "unknown escape", 8),
    ("a > 'x'", "'>' needs a number or a datetime", 5),
    ("a == null", "use 'is null'", 6),
    ("a is nothing", "expected 'null' or 'empty' after 'is'", 6),
    ("a in 1", "expected '[' starting a list", 6),
    ("a in [1, 2", "expected ',' or ']' in the list", 11),
    ("a in [1,, 2]", "expected a value after ','", 9),
    ("and == 1", "found keyword 'and'", 1),
    ("a 1", "expected an operator", 3),
    ("a == 1 b == 2", "expected 'and', 'or' or the end", 8),
    ("t > datetime('yesterday')", "invalid datetime", 14),
    ("a between 5 and 1", "bounds are reversed", 11),
    ("a between 1 or 2", "expected 'and' after '1'", 13),
    ("count(tags) >= -1", "non-negative integer", 16),
    ("count(tags) >= 'x'", "non-negative integer", 16),
    ("id > 3", "does not apply to the point id", 4),
    ("id in [-1]", "point id must be an unsigned 64-bit integer", 8),
    ("x == 99999999999999999999", "outside the signed 64-bit range", 6),
    ("x == 12abc", "malformed number", 6),
    ("a == 1 && b == 2", "use 'and'", 8),
    ("x == [1, 2]", "a list is not allowed after '=='", 6),
    ("'v' == x", "expected 'in' after the value", 5),
    ("", "empty filter expression", 1),
    ("()", "empty parentheses", 2),
    ("a not in [1.5]", "float values are not supported in 'not in'", 11),
    ("at_least(3, a == 1, b == 2)", "has only 2 operand(s)", 10),
    ("a == 1 @", "unexpected character '@'", 8),
    ("``== 1", "empty field name", 1),
]


@pytest.mark.parametrize(("text", "fragment", "column"), MALFORMED)
def test_malformed(text: str, fragment: str, column: int) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse(text)
    message = info.value.message
    assert fragment in message
    assert f"at column {column}" in message
    # The caret line points at the column under the echoed expression.
    lines = message.split("\n")
    assert lines[-2] == "  " + text.replace("\t", " ")
    assert lines[-1] == "  " + " " * (column - 1) + "^"


def test_multiline_error_names_the_line() -> None:
    with pytest.raises(InvalidFilter, match="at column 8 of line 2"):
        parse("a == 1 and\nb == 2 c")


def test_nesting_and_length_limits() -> None:
    # Size limits are RESOURCE_EXHAUSTED (RequestTooLarge) and name the limit.
    with pytest.raises(RequestTooLarge, match="nested deeper than 32 .*max_filter_depth"):
        parse("(" * 100 + "a == 1" + ")" * 100)
    with pytest.raises(RequestTooLarge, match="nested deeper than"):
        parse("not " * 100 + "a == 1")
    with pytest.raises(RequestTooLarge, match="max_filter_expr_chars"):
        parse("a == 1 or " * (MAX_EXPR_CHARS // 10) + "a == 12")
    assert parse("(" * 20 + "a == 1" + ")" * 20) == Filter(must=(Match("a", 1),))


def test_non_string_input() -> None:
    with pytest.raises(InvalidFilter, match="must be a string"):
        parse(None)  # type: ignore[arg-type]
