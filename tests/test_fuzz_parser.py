"""Fuzzing the filter language and the structured filter codec.

The contract: whatever the input, `parse` returns a `Filter` or raises the parser's own
errors — `InvalidFilter` (malformed) or `RequestTooLarge` (a limit) — and nothing else; the
same for `decode_filter` on any `sievedb.v1.Filter` message. A parsed filter renders back to
text that parses again, and a decoded one survives an encode/decode round trip unchanged.

Inputs: arbitrary text; mutations (insert, delete, replace, duplicate, splice) of valid
expressions rendered from random filters; token soups of the language's own vocabulary; and
descriptor-driven random `Filter` messages.
"""

from __future__ import annotations

from typing import Any

from fuzzing import EXPRESSIONS, fuzz_settings, messages
from hypothesis import given
from hypothesis import strategies as st
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_server.errors import InvalidFilter, RequestTooLarge
from sievedb_server.filters.model import Filter
from sievedb_server.filters.parser import parse
from sievedb_server.limits import Limits
from sievedb_server.transport.filter_codec import decode_filter, encode_filter

ALLOWED = (InvalidFilter, RequestTooLarge)

SEEDS = [
    *EXPRESSIONS,
    "a == 1 and (b < 2.5 or not c is null)",
    '`odd key` in ["x", "y"] and count(`odd key`) != 2',
    "id == 18446744073709551615 or id not in [\"a\", 0]",
    'd between datetime("2020-01-01T00:00:00+05:30") and datetime("2021-01-01")',
    "x != -9223372036854775808 and y > 1e300",
    "true",
    "\"v\" not in tags and t is not empty",
]
VOCAB = [
    "(", ")", "[", "]", ",", "==", "!=", "<", "<=", ">", ">=", "and", "or", "not", "in",
    "between", "is", "null", "empty", "true", "false", "id", "count", "datetime", "at_least",
    "a", "`b c`", '"s"', "'t'", "1", "-2", "3.5", "1e999", "99999999999999999999999",
    '"\\u00e9"', '"\\q"', "²", "١", "`", '"', "\\", " ", "\n", "\x00",
]


def _check_parse(text: str, limits: Limits | None = None) -> None:
    try:
        flt = parse(text) if limits is None else parse(text, limits)
    except ALLOWED:
        return
    assert isinstance(flt, Filter)
    assert isinstance(parse(str(flt)), Filter)  # its rendering parses again


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "dup", "splice", "vocab"]))
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 8)))
        if op == "insert":
            text = text[:i] + draw(st.text(min_size=1, max_size=3)) + text[i:]
        elif op == "delete":
            text = text[:i] + text[j:]
        elif op == "replace":
            text = text[:i] + draw(st.text(max_size=3)) + text[j:]
        elif op == "dup":
            text = text[:j] + text[i:j] * draw(st.integers(1, 40)) + text[j:]
        elif op == "splice":
            other = draw(st.sampled_from(SEEDS))
            k = draw(st.integers(0, len(other)))
            text = text[:i] + other[k:]
        else:
            text = text[:i] + " " + draw(st.sampled_from(VOCAB)) + " " + text[i:]
    return text


token_soup = st.lists(st.sampled_from(VOCAB), max_size=30).map(" ".join)


@fuzz_settings(120)
@given(st.text(max_size=200))
def test_parser_on_arbitrary_text(text: str) -> None:
    _check_parse(text)


@fuzz_settings(150)
@given(mutated())
def test_parser_on_mutated_expressions(text: str) -> None:
    _check_parse(text)


@fuzz_settings(100)
@given(token_soup)
def test_parser_on_token_soup(text: str) -> None:
    _check_parse(text)


@fuzz_settings(50)
@given(token_soup, st.integers(1, 6), st.integers(1, 40))
def test_parser_under_small_limits(text: str, depth: int, nodes: int) -> None:
    _check_parse(text, Limits(max_filter_depth=depth, max_filter_nodes=nodes,
                              max_filter_expr_chars=80, max_match_values=3))


def _check_decode(msg: Any) -> None:
    try:
        flt = decode_filter(msg)
    except ALLOWED:
        return
    if flt is not None:
        assert decode_filter(encode_filter(flt)) == flt


@fuzz_settings(60)
@given(messages(pb.Filter.DESCRIPTOR, depth=8))
def test_filter_codec_on_random_messages(msg: pb.Filter) -> None:
    _check_decode(msg)


@fuzz_settings(100)
@given(st.binary(max_size=200))
def test_filter_codec_on_random_bytes(data: bytes) -> None:
    msg = pb.Filter()
    try:
        msg.ParseFromString(data)
    except Exception:  # noqa: BLE001 - not a message at all: the transport refuses it earlier
        return
    _check_decode(msg)
