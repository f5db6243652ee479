"""Attribute validation against a schema, and filter/schema coherence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from sievedb_server.core.types import FieldSpec, FieldType
from sievedb_server.errors import InvalidAttributes, InvalidFilter
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
from sievedb_server.filters.parser import parse
from sievedb_server.filters.schema import validate_attributes, validate_filter

SCHEMA = (
    FieldSpec("year", FieldType.INTEGER),
    FieldSpec("score", FieldType.FLOAT),
    FieldSpec("category", FieldType.KEYWORD),
    FieldSpec("authors", FieldType.KEYWORD_LIST),
    FieldSpec("open", FieldType.BOOLEAN),
    FieldSpec("updated", FieldType.DATETIME),
)
D = datetime(2023, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "value", "stored"),
    [
        ("year", 2020, 2020),
        ("year", np.int64(7), 7),
        ("score", 1, 1.0),
        ("score", 2.5, 2.5),
        ("score", np.float32(0.5), 0.5),
        ("category", "cs.LG", "cs.LG"),
        ("authors", ["a", "b"], ["a", "b"]),
        ("authors", ("a",), ["a"]),
        ("authors", "solo", ["solo"]),
        ("authors", [], []),
        ("open", True, True),
        ("open", np.bool_(False), False),
        ("updated", D, D),
        ("updated", datetime(2023, 1, 1), D),
        ("updated", datetime(2023, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), D),
        ("updated", "2023-01-01T00:00:00Z", D),
        ("year", None, None),
        ("authors", None, None),
        # undeclared fields: JSON-like values as given (numbers/datetimes normalised)
        ("extra", "x", "x"),
        ("extra", [1, "a", None, 2.5, True], [1, "a", None, 2.5, True]),
        ("extra", (1, 2), [1, 2]),
        ("extra", np.int32(3), 3),
        ("extra", datetime(2023, 1, 1), D),
        ("extra", None, None),
    ],
)
def test_accepted_and_normalised(key: str, value: Any, stored: Any) -> None:
    out = validate_attributes(SCHEMA, {key: value})
    assert out == {key: stored}
    assert type(out[key]) is type(stored)
    if isinstance(stored, datetime):
        assert out[key].tzinfo is UTC


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("year", 1.0, "'year' is declared integer and must be an integer, got float"),
        ("year", True, "must be an integer, got bool"),
        ("year", "2020", "must be an integer, got str"),
        ("year", [2020], "must be an integer, got list"),
        ("year", 2**63, "outside signed 64-bit"),
        ("score", True, "'score' is declared float and must be a finite number"),
        ("score", float("nan"), "not finite"),
        ("score", float("inf"), "not finite"),
        ("category", 3, "'category' is declared keyword and must be a string"),
        ("category", ["a"], "must be a string, got list"),
        ("authors", ["a", 1], "'authors' is declared keyword_list and must be a list of strings"),
        ("authors", [None], "must be a list of strings"),
        ("open", 1, "'open' is declared boolean and must be a boolean, got int"),
        ("updated", 1_700_000_000, "'updated' is declared datetime and must be a datetime"),
        ("updated", "yesterday", "not an ISO 8601 datetime"),
        ("extra", {"a": 1}, "holds dict"),
        ("extra", [[1]], "holds a nested list"),
        ("extra", float("nan"), "not finite"),
        ("extra", b"bytes", "holds bytes"),
        ("", 1, "must be a string of 1-128 characters"),
        ("k" * 129, 1, "must be a string of 1-128 characters"),
        ("a\nb", 1, "control character"),
    ],
)
def test_rejected(key: str, value: Any, fragment: str) -> None:
    with pytest.raises(InvalidAttributes) as info:
        validate_attributes(SCHEMA, {key: value})
    assert fragment in info.value.message


def test_misc_inputs() -> None:
    assert validate_attributes(SCHEMA, None) == {}
    assert validate_attributes((), {"a": 1}) == {"a": 1}
    with pytest.raises(InvalidAttributes, match="mapping"):
        validate_attributes(SCHEMA, [("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidAttributes):
        validate_attributes(SCHEMA, {1: "a"})  # type: ignore[dict-item]
    original = {"authors": "solo"}
    validate_attributes(SCHEMA, original)
    assert original == {"authors": "solo"}  # the input is not mutated


# --- validate_filter -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "flt",
    [
        Filter(must=(Match("year", 2020), Range("year", gte=2019.5))),
        Filter(must=(Range("score", gt=1), Range("score", lt=2.5))),
        Filter(must=(Match("category", "x"), MatchAny("authors", ["a"]))),
        Filter(must=(MatchExcept("category", ["x"]), Match("open", True))),
        Filter(must=(Match("updated", D), Range("updated", gte=D))),
        Filter(must=(ValuesCount("authors", gte=2), IsEmpty("year"), IsNull("score"))),
        Filter(must=(HasId(frozenset({1})), Match("undeclared", True))),
        Filter(must=(Range("undeclared", gt=D), Match("other", "x"))),
        parse('category == "cs.LG" and year >= 2020 and "Hinton" in authors'),
    ],
)
def test_coherent_filters_pass(flt: Filter) -> None:
    assert validate_filter(SCHEMA, flt) is flt


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("category > 3", "'category' is declared keyword: a range applies only to"),
        ("authors between 1 and 2", "'authors' is declared keyword_list: a range"),
        ("open >= 1", "'open' is declared boolean: a range"),
        ("year > datetime('2023-01-01')", "range bounds must be numbers, not datetimes"),
        ("updated > 2023", "range bounds must be datetimes"),
        ("score == 3", "'score' is declared float: equality on floats is not supported"),
        ("score in [1, 2]", "equality on floats"),
        ("category == 3", "'category' is declared keyword: cannot match it against int"),
        ("year == 'x'", "cannot match it against str"),
        ("year == true", "cannot match it against bool"),
        ("open == 1", "'open' is declared boolean: cannot match it against int"),
        ("updated == '2023-01-01'", "cannot match it against str"),
        ("a == 1 or (b == 2 and not authors not in [1])", "cannot match it against int"),
    ],
)
def test_incoherent_filters_rejected(text: str, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        validate_filter(SCHEMA, parse(text))
    assert fragment in info.value.message


def test_none_filter() -> None:
    assert validate_filter(SCHEMA, None) is None
