"""Regression tests for the bugs the fuzz suites found (each was INTERNAL or a crash before).

See `benchmarks/results/fuzz_campaign.md` for the campaign that runs the suites at length.
"""

from __future__ import annotations

import grpc
import pytest
from sievedb import Client
from sievedb import errors as E
from sievedb_server.core.engine import Engine
from sievedb_server.errors import InvalidFilter
from sievedb_server.filters.parser import parse
from sievedb_server.transport.server import SieveServer


@pytest.mark.parametrize(
    "text",
    ["a == ²", "a == 1²", "a == ١", "a > 3e²", "a == " + "9" * 5000, "a in [-" + "1" * 4400 + "]"],
)
def test_parser_refuses_non_decimal_digits_and_giant_integers(text: str) -> None:
    # Were ValueError from int(): '²'.isdigit() is True, and int() refuses > 4300 digits.
    with pytest.raises(InvalidFilter):
        parse(text)


def test_parser_still_reads_numbers() -> None:
    assert str(parse("a == 12 and b < -3.5e2 and c == 9223372036854775807")) == (
        "a == 12 and b < -350.0 and c == 9223372036854775807"
    )


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        ("DescribeCollection", b"\xff\xff"),  # not protobuf at all
        ("DescribeCollection", b"\x0a\x02\xc3\x28"),  # a string field with invalid UTF-8
        ("Search", b"\x12\x05\x0a\x03abc\x18"),  # truncated
    ],
)
def test_undecodable_requests_are_invalid_argument(
    server_handle: tuple[SieveServer, int], method: str, payload: bytes
) -> None:
    # grpcio answers INTERNAL "Exception deserializing request!" by itself.
    _, port = server_handle
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(
        grpc.RpcError
    ) as info:
        channel.unary_unary(f"/sievedb.v1.SieveDB/{method}")(payload, timeout=10)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message" in (info.value.details() or "")


def test_undecodable_stream_message_is_invalid_argument(
    server_handle: tuple[SieveServer, int],
) -> None:
    _, port = server_handle
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream("/sievedb.v1.SieveDB/BulkLoad")
        with pytest.raises(grpc.RpcError) as info:
            list(call(iter([b"\xff\xff"]), timeout=10))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("model", ["😀" * 128, "é" * 10, "a/b"])
def test_model_ids_that_could_not_be_keys_are_refused(
    server: tuple[Client, Engine], model: str
) -> None:
    # 128 four-byte characters made `m:<id>` longer than an LMDB key: INTERNAL.
    client, _ = server
    client.create_collection("c", 4)
    with pytest.raises(E.InvalidArgument) as info:
        client.register_model("c", model, 4)
    assert info.value.reason == "INVALID_NAME"
    assert client.register_model("c", "e5-large-v2@2:int8", 4).id == "e5-large-v2@2:int8"
