"""Coverage-guided fuzzing (atheris / libFuzzer) of the filter parser and the filter codec.

    python -m benchmarks.fuzz_atheris_parser -runs=200000 -artifact_prefix=/tmp/crash-

Each input is used twice: as text for `parse` (the expression language), and as bytes of a
`sievedb.v1.Filter` message for `decode_filter`. Anything but a `Filter`/None or the
parser's own errors (`InvalidFilter`, `RequestTooLarge`) is a crash, which libFuzzer saves
under `-artifact_prefix`. `benchmarks/fuzz_campaign.py` runs this with a fixed seed.
Needs `pip install atheris` (Linux/macOS wheels; not part of the dev extra).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["sievedb_server"]):
    from google.protobuf.message import DecodeError
    from sievedb_proto.v1 import sievedb_pb2 as pb
    from sievedb_server.errors import InvalidFilter, RequestTooLarge
    from sievedb_server.filters.model import Filter
    from sievedb_server.filters.parser import parse
    from sievedb_server.transport.filter_codec import decode_filter

ALLOWED = (InvalidFilter, RequestTooLarge)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    text = fdp.ConsumeUnicodeNoSurrogates(len(data))
    try:
        flt = parse(text)
    except ALLOWED:
        pass
    else:
        if not isinstance(flt, Filter):
            raise TypeError(f"parse returned {type(flt).__name__}")
        parse(str(flt))  # its rendering parses again
    msg = pb.Filter()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        return
    try:
        decode_filter(msg)
    except ALLOWED:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
