"""proto ⇄ domain filter codec, value codec, text rendering, and the client `F` builder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sievedb._values import decode_value as client_decode_value
from sievedb._values import encode_value as client_encode_value
from sievedb.filters import F
from sievedb_proto.v1 import sievedb_pb2 as pb
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
)
from sievedb_server.filters.parser import parse
from sievedb_server.filters.reference import matches
from sievedb_server.transport.filter_codec import (
    decode_filter,
    decode_value,
    encode_condition,
    encode_filter,
    encode_value,
)

SETTINGS = settings(max_examples=200, derandomize=True, database=None, deadline=None)

# --- strategies ------------------------------------------------------------------------------

# Keys that exercise quoting in the text form: keywords, spaces, backquotes, dots, unicode.
KEYS = ["a", "b", "and", "id", "count", "with space", "x`y", "m.n", "é"]
keys = st.sampled_from(KEYS)
datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
int64 = st.integers(-(2**63), 2**63 - 1)
small_ints = st.integers(-3, 3)
strings = st.one_of(st.sampled_from(["x", "y", ""]), st.text(max_size=6))
match_values = st.one_of(strings, int64, small_ints, st.booleans(), datetimes)
finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def ranges(draw: st.DrawFn) -> Range:
    key = draw(keys)
    bound = datetimes if draw(st.booleans()) else st.one_of(int64, small_ints, finite)
    names = draw(st.sets(st.sampled_from(["gt", "gte", "lt", "lte"]), min_size=1))
    return Range(key, **{n: draw(bound) for n in names})


@st.composite
def counts(draw: st.DrawFn) -> ValuesCount:
    names = draw(st.sets(st.sampled_from(["gt", "gte", "lt", "lte"]), min_size=1))
    return ValuesCount(draw(keys), **{n: draw(st.integers(0, 4)) for n in names})


leaves: st.SearchStrategy[Condition] = st.one_of(
    st.builds(Match, keys, match_values),
    st.builds(MatchAny, keys, st.lists(match_values, max_size=4)),
    st.builds(MatchExcept, keys, st.lists(match_values, max_size=4)),
    ranges(),
    counts(),
    st.builds(IsEmpty, keys),
    st.builds(IsNull, keys),
    st.builds(lambda ids: HasId(frozenset(ids)),
              st.sets(st.one_of(st.integers(0, 2**64 - 1), st.text(min_size=1, max_size=4)),
                      max_size=4)),
)


def _filter_of(must: list, should: list, must_not: list, ms: int) -> Filter:  # type: ignore[type-arg]
    return Filter(tuple(must), tuple(should), tuple(must_not), min(ms, len(should)))


filters: st.SearchStrategy[Filter] = st.recursive(
    st.builds(_filter_of, st.lists(leaves, max_size=3), st.lists(leaves, max_size=3),
              st.lists(leaves, max_size=2), st.integers(0, 3)),
    lambda inner: st.builds(
        _filter_of,
        st.lists(st.one_of(leaves, inner), max_size=3),
        st.lists(st.one_of(leaves, inner), max_size=3),
        st.lists(st.one_of(leaves, inner), max_size=2),
        st.integers(0, 3),
    ),
    max_leaves=12,
)

# Points over the same keys, with values likely to hit the conditions above.
point_values = st.one_of(
    st.none(), strings, small_ints, st.booleans(), finite, datetimes,
    st.lists(st.one_of(st.none(), strings, small_ints, st.booleans(), finite), max_size=4),
)
points = st.tuples(
    st.one_of(st.integers(0, 3), st.sampled_from(["x", "y"])),
    st.dictionaries(keys, point_values, max_size=5),
)


# --- round trips -----------------------------------------------------------------------------


@SETTINGS
@given(filters)
def test_model_proto_model_round_trip(flt: Filter) -> None:
    msg = encode_filter(flt)
    wire = pb.Filter.FromString(msg.SerializeToString())
    decoded = decode_filter(wire)
    if flt.is_empty():
        assert decoded is None
    else:
        assert decoded == flt
        assert hash(decoded) == hash(flt)


@SETTINGS
@given(filters, st.lists(points, min_size=1, max_size=8))
def test_text_rendering_reparses_to_an_equivalent_filter(flt: Filter, pts: list) -> None:  # type: ignore[type-arg]
    again = parse(str(flt))
    for pid, attrs in pts:
        assert matches(again, pid, attrs) == matches(flt, pid, attrs), str(flt)


@SETTINGS
@given(st.recursive(
    st.one_of(st.none(), st.booleans(), int64, finite, st.text(), datetimes),
    lambda inner: st.lists(inner, max_size=3), max_leaves=8,
))
def test_value_round_trip_server_and_client(value: Any) -> None:
    server_msg = encode_value(value)
    client_msg = client_encode_value(value)
    assert server_msg == client_msg
    for decoded in (decode_value(server_msg), client_decode_value(server_msg)):
        assert decoded == value
        assert type(decoded) is type(value)


def test_datetime_values_are_exact_microseconds() -> None:
    d = datetime(2023, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert encode_value(d).datetime_value == 1_672_531_200_000_001
    assert encode_value(datetime(1969, 12, 31, 23, 59, 59, 999_999)).datetime_value == -1
    back = decode_value(pb.AttrValue(datetime_value=-1))
    assert back == datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert back.tzinfo is UTC


def test_value_codec_errors() -> None:
    with pytest.raises(InvalidAttributes, match="64-bit"):
        encode_value(2**63)
    with pytest.raises(InvalidAttributes, match="unsupported"):
        encode_value({"a": 1})
    with pytest.raises(InvalidAttributes, match="no kind"):
        decode_value(pb.AttrValue())
    with pytest.raises(InvalidAttributes, match="outside"):
        decode_value(pb.AttrValue(datetime_value=2**62))
    assert decode_value(pb.AttrValue(null_value=True)) is None


# --- decode_filter specifics -------------------------------------------------------------


def _field(key: str, **kind: Any) -> pb.Condition:
    return pb.Condition(field=pb.FieldCondition(key=key, **kind))


def test_absent_and_empty_filters_decode_to_none() -> None:
    assert decode_filter(None) is None
    assert decode_filter(pb.Filter()) is None
    assert decode_filter(pb.Filter(expr="   ")) is None


def test_expr_is_anded_with_structured_clauses() -> None:
    msg = pb.Filter(must=[encode_condition(Match("a", 1))], expr="b == 2 or c is null")
    flt = decode_filter(msg)
    assert flt == Filter(must=(Match("a", 1),), should=(Match("b", 2), IsNull("c")))
    assert decode_filter(pb.Filter(expr="b == 2")) == Filter(must=(Match("b", 2),))


@pytest.mark.parametrize(
    ("msg", "fragment"),
    [
        (pb.Filter(must=[pb.Condition()]), "must[0]: condition kind is not set"),
        (pb.Filter(must=[pb.Condition(), _field("x")]), "must[0]:"),
        (pb.Filter(should=[pb.Condition(is_null=pb.IsNullCondition(key="a")), _field("x")]),
         "should[1].field: field condition kind"),
        (pb.Filter(must_not=[_field("x", match=pb.Match())]), "must_not[0].field.match: match kind"),
        (pb.Filter(must=[_field("x", range=pb.Range())]),
         "must[0].field.range: range on 'x': needs at least one"),
        (pb.Filter(must=[_field("x", range=pb.Range(gt=pb.AttrValue(string_value="a")))]),
         "must[0].field.range:"),
        (pb.Filter(must=[_field("x", range=pb.Range(gt=pb.AttrValue()))]),
         "must[0].field.range.gt: attribute value has no kind set"),
        (pb.Filter(must=[_field("x", match=pb.Match(value=pb.AttrValue(float_value=1.5)))]),
         "use a range"),
        (pb.Filter(must=[_field("", match=pb.Match(value=pb.AttrValue(int_value=1)))]),
         "must[0].field.match: match: field key must be"),
        (pb.Filter(must=[pb.Condition(filter=pb.Filter(must=[
            pb.Condition(), ]))]), "must[0].filter.must[0]: condition kind is not set"),
        (pb.Filter(must=[pb.Condition(filter=pb.Filter(expr="a == 1"))]),
         "must[0].filter.expr: a text expression is only allowed at the top level"),
        (pb.Filter(must=[pb.Condition(has_id=pb.HasIdCondition(ids=[pb.PointId()]))]),
         "must[0].has_id.ids[0]: point id kind is not set"),
        (pb.Filter(should=[pb.Condition(is_empty=pb.IsEmptyCondition(key="a"))], min_should=2),
         "min_should (2) exceeds"),
        (pb.Filter(expr="a =="),
         "expr: expected a value after '==', found the end of the expression at column 5"),
    ],
)
def test_decode_errors_carry_a_path(msg: pb.Filter, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        decode_filter(msg)
    assert fragment in info.value.message


def test_decode_rejects_deep_nesting() -> None:
    msg = pb.Filter(must=[encode_condition(IsNull("a"))])
    for _ in range(40):
        msg = pb.Filter(must=[pb.Condition(filter=msg)])
    with pytest.raises(RequestTooLarge, match="depth is 33; the limit is 32"):
        decode_filter(msg)


# --- the client builder ------------------------------------------------------------------

D = datetime(2023, 6, 1, tzinfo=UTC)
POINTS: dict[int | str, dict[str, Any]] = {
    1: {"category": "cs.LG", "year": 2021, "authors": ["Hinton", "LeCun"], "license": "cc",
        "score": 0.5, "updated": D},
    2: {"category": "cs.LG", "year": 2019, "authors": ["Hinton"], "license": None,
        "score": 1.5, "updated": D - timedelta(days=400)},
    3: {"category": "cs.CV", "year": 2022, "authors": [], "score": 2.5},
    "p4": {"category": "cs.LG", "year": 2023, "authors": ["Bengio"], "license": "none",
           "updated": D + timedelta(days=1)},
}


def _via_wire(expr: Any) -> set[int | str]:
    flt = decode_filter(pb.Filter.FromString(expr.to_proto().SerializeToString()))
    return {pid for pid, attrs in POINTS.items() if matches(flt, pid, attrs)}


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: F.eq("category", "cs.LG"), {1, 2, "p4"}),
        (lambda: F.eq("authors", "Hinton"), {1, 2}),
        (lambda: F.any("category", ["cs.CV", "math"]), {3}),
        (lambda: F.except_("license", ["none"]), {1}),  # null and missing are not "different"
        (lambda: ~F.eq("license", "none"), {1, 2, 3}),
        (lambda: F.range("year", gte=2020, lt=2023), {1, 3}),
        (lambda: F.range("score", gt=1), {2, 3}),
        (lambda: F.range("updated", gte=D), {1, "p4"}),
        (lambda: F.count("authors", gte=1), {1, 2, "p4"}),
        (lambda: F.count("license", lt=1), {2, 3}),
        (lambda: F.is_empty("authors"), {3}),
        (lambda: F.is_empty("license"), {2, 3}),
        (lambda: F.is_null("license"), {2}),
        (lambda: F.has_id([1, "p4"]), {1, "p4"}),
        (lambda: F.has_id(["1"]), set()),
        (lambda: F.eq("score", 1.5), {2}),
        (lambda: (F.field("year") >= 2020) & (F.field("category") == "cs.LG"), {1, "p4"}),
        (lambda: (F.field("year") < 2020) | F.eq("category", "cs.CV"), {2, 3}),
        (lambda: F.field("license") != "none", {1}),
        (lambda: F.field("score") != 1.5, {1, 3}),
        (lambda: F.field("year").between(2021, 2022), {1, 3}),
        (lambda: F.field("category").isin(["cs.CV"]) | F.field("year").not_in([2021, 2023]),
         {2, 3}),
        (lambda: F.at_least(2, F.eq("category", "cs.LG"), F.range("year", gt=2020),
                            F.eq("authors", "Hinton")), {1, 2, "p4"}),
        (lambda: ~(F.eq("category", "cs.LG") & F.range("year", lt=2022)), {3, "p4"}),
        (lambda: ~~F.eq("category", "cs.CV"), {3}),
        (lambda: F.expr("year >= 2022") & F.eq("category", "cs.LG"), {"p4"}),
        (lambda: F.expr("year >= 2022") & ~F.expr("category == 'cs.CV'"), {"p4"}),
        (lambda: F.expr("year == 2019") | F.expr("year == 2022"), {2, 3}),
        (lambda: F.eq("category", "cs.LG") & F.expr("'Hinton' in authors")
         & F.expr("year > 2020"), {1}),
    ],
)
def test_builder_through_the_wire(build: Any, expected: set[int | str]) -> None:
    assert _via_wire(build()) == expected


def test_builder_misuse() -> None:
    from sievedb.errors import InvalidFilter as ClientInvalidFilter

    with pytest.raises(TypeError, match="no truth value"):
        bool(F.eq("a", 1))
    with pytest.raises(TypeError):
        _ = F.eq("a", 1) & "b == 2"  # type: ignore[operator]
    with pytest.raises(ClientInvalidFilter, match="combined with"):
        (F.expr("a == 1") | F.eq("b", 2)).to_proto()
    with pytest.raises(ClientInvalidFilter, match="at least one"):
        F.range("a")
    with pytest.raises(ClientInvalidFilter, match="floats"):
        F.any("a", [1.5])
    with pytest.raises(ClientInvalidFilter):
        F.has_id([True])
    with pytest.raises(ClientInvalidFilter):
        F.at_least(3, F.eq("a", 1))


def test_client_imports_no_server_code() -> None:
    import subprocess
    import sys

    code = ("import sys; import sievedb.filters, sievedb._values; "
            "assert not [m for m in sys.modules if m.startswith('sievedb_server')]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@SETTINGS
@given(filters)
def test_limit_checks_measure_the_tree_as_its_own_methods_do(flt: Filter) -> None:
    from sievedb_server.filters.model import HasId, MatchAny, MatchExcept, measure

    def longest(f: Filter) -> int:
        out = 0
        for c in f.conditions():
            if isinstance(c, Filter):
                out = max(out, longest(c))
            elif isinstance(c, MatchAny | MatchExcept):
                out = max(out, len(c.values))
            elif isinstance(c, HasId):
                out = max(out, len(c.ids))
        return out

    assert measure(flt) == (flt.depth(), flt.size(), longest(flt))
