"""The reference evaluator: Qdrant's semantics, row by row, plus algebraic properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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
    and_,
    check_limits,
    not_,
    or_,
)
from sievedb_server.filters.reference import matches, matches_condition

D2023 = datetime(2023, 1, 1, tzinfo=UTC)

# Qdrant's documentation example (concepts/filtering.md).
CITIES = {
    1: {"city": "London", "color": "green"},
    2: {"city": "London", "color": "red"},
    3: {"city": "London", "color": "blue"},
    4: {"city": "Berlin", "color": "red"},
    5: {"city": "Moscow", "color": "green"},
    6: {"city": "Moscow", "color": "blue"},
}


def ids_matching(flt: Filter | None) -> set[int]:
    return {pid for pid, attrs in CITIES.items() if matches(flt, pid, attrs)}


def test_qdrant_doc_clauses() -> None:
    london, red = Match("city", "London"), Match("color", "red")
    assert ids_matching(Filter(must=(london, red))) == {2}
    assert ids_matching(Filter(should=(london, red))) == {1, 2, 3, 4}
    assert ids_matching(Filter(must_not=(london, red))) == {5, 6}
    assert ids_matching(Filter(must=(london,), must_not=(red,))) == {1, 3}
    nested = Filter(must_not=(Filter(must=(Match("city", "Moscow"), Match("color", "green"))),))
    assert ids_matching(nested) == {1, 2, 3, 4, 6}


def test_empty_and_none_filters_match_everything() -> None:
    assert ids_matching(None) == set(CITIES)
    assert ids_matching(Filter()) == set(CITIES)
    assert matches(Filter(), "x", None)


def test_min_should() -> None:
    conds = (Match("city", "London"), Match("color", "red"), Match("color", "green"))
    assert ids_matching(Filter(should=conds, min_should=2)) == {1, 2}
    assert ids_matching(Filter(should=conds, min_should=0)) == ids_matching(
        Filter(should=conds, min_should=1)
    )
    assert ids_matching(Filter(should=conds, min_should=3)) == set()


@pytest.mark.parametrize(
    ("cond", "value", "expected"),
    [
        # match value: typed equality, any element of a list
        (Match("k", "a"), "a", True),
        (Match("k", "a"), ["b", "a"], True),
        (Match("k", "a"), ["b"], False),
        (Match("k", "a"), [], False),
        (Match("k", "a"), None, False),
        (Match("k", 3), 3, True),
        (Match("k", 3), 3.0, False),  # Qdrant: an integer match never equals a float
        (Match("k", 1), True, False),  # bool is not int
        (Match("k", True), 1, False),
        (Match("k", True), True, True),
        (Match("k", "3"), 3, False),
        (Match("k", D2023), D2023, True),
        (Match("k", D2023), D2023.astimezone(timezone(timedelta(hours=2))), True),
        (Match("k", D2023), datetime(2023, 1, 1), True),  # naive stored → UTC
        (Match("k", "a"), [["a"]], False),  # nested lists are not flattened
        # match any
        (MatchAny("k", ["a", "b"]), "b", True),
        (MatchAny("k", ["a", "b"]), ["c", "b"], True),
        (MatchAny("k", ["a", "b"]), "c", False),
        (MatchAny("k", [1, 2]), True, False),
        (MatchAny("k", []), "a", False),
        (MatchAny("k", ["a"]), None, False),
        # match except (Qdrant: any element outside; null/missing/empty false)
        (MatchExcept("k", ["a", "b"]), "c", True),
        (MatchExcept("k", ["a", "b"]), "a", False),
        (MatchExcept("k", ["a"]), ["a", "c"], True),
        (MatchExcept("k", ["a"]), ["a", "a"], False),
        (MatchExcept("k", ["a"]), [], False),
        (MatchExcept("k", ["a"]), None, False),
        (MatchExcept("k", ["a"]), [None], False),
        (MatchExcept("k", ["a"]), 5, True),  # other type counts as outside
        (MatchExcept("k", [1]), 1.0, True),
        (MatchExcept("k", []), "x", True),
        # range: numeric across int/float, datetime only with datetimes, bools excluded
        (Range("k", gte=3), 3.0, True),
        (Range("k", gt=3.0), 3, False),
        (Range("k", gt=1, lt=2), 1.5, True),
        (Range("k", lte=2.5), [10, 2], True),
        (Range("k", lte=2.5), [10, 20], False),
        (Range("k", gte=0), True, False),
        (Range("k", gte=0), "5", False),
        (Range("k", gte=0), float("nan"), False),
        (Range("k", gte=D2023), D2023, True),
        (Range("k", gt=D2023), D2023 + timedelta(microseconds=1), True),
        (Range("k", gt=D2023), D2023, False),
        (Range("k", gte=D2023), 1_700_000_000, False),
        (Range("k", gte=0), D2023, False),
        (Range("k", lt=D2023), datetime(2022, 12, 31), True),
        (Range("k", gte=2**63 - 1), 2**63 - 2, False),
        # values count
        (ValuesCount("k", gte=2), ["a", "b"], True),
        (ValuesCount("k", gte=2), ["a"], False),
        (ValuesCount("k", lt=1), None, True),
        (ValuesCount("k", lt=1), [], True),
        (ValuesCount("k", lte=1, gte=1), "scalar", True),
        # is_empty / is_null
        (IsEmpty("k"), None, True),
        (IsEmpty("k"), [], True),
        (IsEmpty("k"), [None], False),
        (IsEmpty("k"), "", False),
        (IsEmpty("k"), 0, False),
        (IsNull("k"), None, True),
        (IsNull("k"), [], False),
        (IsNull("k"), [None], False),
        (IsNull("k"), "x", False),
    ],
)
def test_condition_table(cond: object, value: object, expected: bool) -> None:
    assert matches_condition(cond, 1, {"k": value}) is expected  # type: ignore[arg-type]
    assert matches(Filter(must=(cond,)), 1, {"k": value}) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (Match("k", "a"), False),
        (MatchAny("k", ["a"]), False),
        (MatchExcept("k", ["a"]), False),
        (Range("k", gte=0), False),
        (ValuesCount("k", lt=1), True),
        (ValuesCount("k", gte=1), False),
        (IsEmpty("k"), True),
        (IsNull("k"), False),
    ],
)
def test_missing_field(cond: object, expected: bool) -> None:
    assert matches_condition(cond, 1, {"other": 1}) is expected  # type: ignore[arg-type]
    assert matches_condition(cond, 1, None) is expected  # type: ignore[arg-type]


def test_has_id_distinguishes_int_and_str() -> None:
    cond = HasId(frozenset({1, "a"}))
    assert matches_condition(cond, 1, {})
    assert matches_condition(cond, "a", {})
    assert not matches_condition(cond, "1", {})
    assert not matches_condition(cond, 2, {})
    assert not matches_condition(HasId(frozenset()), 1, {})


def test_must_not_of_match_includes_missing_but_except_does_not() -> None:
    # The documented difference between `not (x == v)` and `x != v`.
    neg = Filter(must_not=(Match("k", "a"),))
    exc = Filter(must=(MatchExcept("k", ["a"]),))
    assert matches(neg, 1, {}) and not matches(exc, 1, {})
    assert matches(neg, 1, {"k": "b"}) and matches(exc, 1, {"k": "b"})
    # On lists they differ too: except = some element outside, not(match) = none equal.
    assert not matches(neg, 1, {"k": ["a", "b"]}) and matches(exc, 1, {"k": ["a", "b"]})


# --- model validation and identity -------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Match("", "a"),
        lambda: Match("k" * 129, "a"),
        lambda: Match("a\x00b", "a"),
        lambda: Match("k", 1.5),
        lambda: Match("k", None),
        lambda: Match("k", ["a"]),
        lambda: MatchAny("k", "abc"),
        lambda: MatchAny("k", [1.5]),
        lambda: MatchExcept("k", [None]),
        lambda: Range("k"),
        lambda: Range("k", gt="a"),
        lambda: Range("k", gt=True),
        lambda: Range("k", gt=float("nan")),
        lambda: Range("k", gt=float("inf")),
        lambda: Range("k", gt=1, lt=D2023),
        lambda: ValuesCount("k"),
        lambda: ValuesCount("k", gt=-1),
        lambda: ValuesCount("k", gt=1.5),
        lambda: HasId(frozenset({True})),
        lambda: HasId(frozenset({-1})),
        lambda: HasId(frozenset({""})),
        lambda: HasId("abc"),
        lambda: Filter(must=("not a condition",)),
        lambda: Filter(should=(IsNull("a"),), min_should=2),
        lambda: Filter(min_should=-1),
        lambda: Filter(must=IsNull("a")),
    ],
)
def test_model_rejects_malformed(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidFilter):
        build()


def test_identity_is_type_aware_and_hashable() -> None:
    assert Match("k", True) != Match("k", 1)
    assert Range("k", gt=1) != Range("k", gt=1.0)
    assert MatchAny("k", ["b", "a", "a"]) == MatchAny("k", ("a", "b"))
    assert MatchAny("k", [1, True]).values == (True, 1)
    assert len({Match("k", 1), Match("k", True), Match("k", 1)}) == 2
    assert Match("k", datetime(2023, 1, 1)) == Match("k", D2023)
    assert hash(Filter(must=(IsNull("a"),))) == hash(Filter(must=(IsNull("a"),)))
    assert Filter(must=(IsNull("a"),)) != Filter(should=(IsNull("a"),))
    assert HasId(frozenset({1})).key is None and Filter().key is None
    assert Match("k", "a").key == "k"


def test_depth_size_and_limits() -> None:
    flat = Filter(must=(Match("a", 1), MatchAny("b", [1, 2, 3])))
    assert flat.depth() == 1 and flat.size() == 1 + 1 + 4
    deep: Filter = Filter()
    for _ in range(40):
        deep = Filter(must=(deep,))
    assert deep.depth() == 41
    with pytest.raises(RequestTooLarge, match="depth is 41; the limit is 32"):
        check_limits(deep)
    with pytest.raises(RequestTooLarge, match="nodes"):
        check_limits(Filter(must=(MatchAny("a", range(20_000)),)))
    assert check_limits(flat) is flat


def test_str_is_compact() -> None:
    flt = Filter(
        must=(Match("category", "cs.LG"), Range("year", gte=2020)),
        should=(IsNull("x"), HasId(frozenset({2, "b"}))),
        must_not=(Match("license", "none"),),
    )
    assert str(flt) == (
        'category == "cs.LG" and year >= 2020 and (x is null or id in [2, "b"]) '
        'and not license == "none"'
    )
    assert str(Filter()) == "true"
    assert str(Match("my field", "a")) == '`my field` == "a"'


# --- combinators, checked by evaluation ---------------------------------------------------

_keys = st.sampled_from(["a", "b"])
_vals = st.one_of(st.sampled_from(["x", "y"]), st.integers(0, 3), st.booleans())
_leaf = st.one_of(
    st.builds(Match, _keys, _vals),
    st.builds(MatchAny, _keys, st.lists(_vals, max_size=3)),
    st.builds(MatchExcept, _keys, st.lists(_vals, max_size=3)),
    st.builds(lambda k, lo: Range(k, gte=lo), _keys, st.integers(0, 3)),
    st.builds(IsEmpty, _keys),
    st.builds(IsNull, _keys),
    st.builds(lambda ids: HasId(frozenset(ids)), st.sets(st.integers(0, 3), max_size=2)),
)
_cond = st.recursive(
    _leaf,
    lambda inner: st.builds(
        lambda must, should, must_not, ms: Filter(must, should, must_not, min(ms, len(should))),
        st.lists(inner, max_size=2), st.lists(inner, max_size=3), st.lists(inner, max_size=2),
        st.integers(0, 3),
    ),
    max_leaves=6,
)
_point = st.tuples(
    st.integers(0, 3),
    st.dictionaries(
        _keys,
        st.one_of(st.none(), _vals, st.floats(0, 3), st.lists(_vals, max_size=3)),
    ),
)


@settings(max_examples=300, derandomize=True, database=None)
@given(_cond, _cond, _point)
def test_combinators_mean_what_they_say(a, b, point) -> None:  # type: ignore[no-untyped-def]
    pid, attrs = point
    ma, mb = matches_condition(a, pid, attrs), matches_condition(b, pid, attrs)
    assert matches(and_(a, b), pid, attrs) == (ma and mb)
    assert matches(and_(a, None, b), pid, attrs) == (ma and mb)
    assert matches(or_(a, b), pid, attrs) == (ma or mb)
    assert matches(not_(a), pid, attrs) == (not ma)
    assert matches(not_(not_(a)), pid, attrs) == ma
    assert matches(and_(), pid, attrs)
