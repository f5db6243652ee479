"""Deadlines and cancellation: long work stops between sub-steps and leaves nothing half-done.

In-process, a `CallBudget` that runs out after a given number of checkpoints makes the stop
point deterministic; through gRPC, a slowed-down query loop shows the server giving up once
the client's deadline has passed instead of finishing work nobody waits for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sievedb import Client
from sievedb import errors as E
from sievedb_server.core import collection as collection_module
from sievedb_server.core import deadline
from sievedb_server.core.engine import Engine
from sievedb_server.core.types import CollectionSpec, FieldSpec, FieldType, SearchParams
from sievedb_server.errors import Cancelled, DeadlineExceeded
from sievedb_server.filters.parser import parse

DIM = 4


class _Countdown:
    """A budget with `checks` checkpoints of time left; then expired (or cancelled)."""

    def __init__(self, checks: int, *, cancel: bool = False) -> None:
        self.left = checks
        self.cancel = cancel
        self.calls = 0

    def time_remaining(self) -> float | None:
        self.calls += 1
        self.left -= 1
        if self.cancel:
            return 10.0
        return 10.0 if self.left >= 0 else 0.0

    def is_active(self) -> bool:
        return not (self.cancel and self.left < 0)

    def budget(self) -> deadline.CallBudget:
        return deadline.CallBudget(self.time_remaining, self.is_active)


@pytest.fixture
def eng(engine: Engine) -> Engine:
    engine.create_collection(
        CollectionSpec("c", DIM, schema=(FieldSpec("g", FieldType.INTEGER),))
    )
    rng = np.random.default_rng(7)
    n = 600
    engine.upsert("c", list(range(n)), rng.normal(size=(n, DIM)).astype(np.float32),
                  [{"g": i % 2} for i in range(n)])
    return engine


def _vectors(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def test_checkpoint_is_a_no_op_outside_a_call() -> None:
    deadline.checkpoint("anything")
    assert deadline.current() is None


def test_expired_upsert_aborts_its_transaction(eng: Engine) -> None:
    before = eng.describe_collection("c")
    countdown = _Countdown(1)  # "before the write" passes, the in-transaction check fails
    with deadline.bind(countdown.budget()), pytest.raises(DeadlineExceeded, match="commit"):
        eng.upsert("c", list(range(5000, 5010)), _vectors(10))
    after = eng.describe_collection("c")
    assert (after.point_count, after.watermark) == (before.point_count, before.watermark)
    assert eng.get("c", [5000], allow_missing=True) == []
    assert eng.upsert("c", [5000], _vectors(1)) == before.watermark + 1  # and writes go on


def test_expired_bulk_chunk_writes_nothing(eng: Engine) -> None:
    before = eng.describe_collection("c").point_count
    with deadline.bind(_Countdown(1).budget()), pytest.raises(DeadlineExceeded):
        eng.bulk_upsert("c", list(range(7000, 7100)), _vectors(100), load_id="L", offset=0)
    assert eng.describe_collection("c").point_count == before
    assert eng.load_rows("c", "L") is None


def test_expired_delete_by_filter_deletes_nothing(eng: Engine) -> None:
    flt = parse("g == 0")
    assert eng.count("c", flt) == 300
    budget = _Countdown(0).budget()  # fails at the check inside the delete's transaction
    with deadline.bind(budget), pytest.raises(DeadlineExceeded, match="commit"):
        eng.delete("c", filter=flt)
    assert eng.count("c", flt) == 300
    assert eng.delete("c", filter=flt)[0] == 300


def test_cancelled_search_batch_stops_between_queries(eng: Engine) -> None:
    countdown = _Countdown(3, cancel=True)
    flt = parse("g == 1")
    with deadline.bind(countdown.budget()), pytest.raises(Cancelled, match="search batch"):
        eng.search_batch("c", _vectors(50), SearchParams(k=3), [flt])
    assert countdown.calls < 10  # stopped early, not after the 50 queries


def test_expired_scroll_stops(eng: Engine) -> None:
    with deadline.bind(_Countdown(0).budget()), pytest.raises(DeadlineExceeded, match="scroll"):
        eng.scroll("c", None, limit=1000)


# --- through gRPC --------------------------------------------------------------------------


@pytest.fixture
def slow_queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Make each filtered query take 50 ms; yields the list of queries actually run."""
    ran: list[int] = []
    real = collection_module.run_query

    def slow(*args: Any, **kwargs: Any) -> Any:
        ran.append(1)
        time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(collection_module, "run_query", slow)
    yield ran


def test_server_stops_a_batch_once_the_deadline_passed(
    server: tuple[Client, Engine], slow_queries: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = server
    client.create_collection("c", DIM, schema={"g": "integer"})
    client.upsert("c", list(range(100)), _vectors(100), [{"g": i % 2} for i in range(100)])
    caplog.set_level(logging.INFO, logger="sievedb.access")
    with pytest.raises(E.DeadlineExceeded):
        client.search_batch("c", _vectors(40, seed=2), k=3, filters="g == 1", timeout=0.3)
    # The server notices at its next checkpoint and gives up: far fewer than 40 queries ran.
    give_up = time.monotonic() + 10
    while not any("SearchBatch DEADLINE_EXCEEDED" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < give_up, "the server did not stop the batch"
        time.sleep(0.02)
    assert len(slow_queries) < 40
    assert client.count("c") == 100  # and keeps serving


def test_client_cancelling_a_stream_is_logged_as_cancelled(
    server_handle: tuple[Any, int], caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    import grpc
    from sievedb_proto.v1 import sievedb_pb2_grpc as pb_grpc

    _, port = server_handle
    caplog.set_level(logging.INFO)
    release = threading.Event()

    def requests() -> Iterator[Any]:
        release.wait(10)
        yield from ()

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = pb_grpc.SieveDBStub(channel).BulkLoad(requests(), timeout=30)
        time.sleep(0.3)
        call.cancel()
        # The request iterator stays blocked until the server has logged: releasing it earlier
        # lets the client half-close the stream, and if that reaches the server before the
        # cancel, the empty bulk load ends OK (a race a CI run hit).
        try:
            give_up = time.monotonic() + 10
            while not any("BulkLoad CANCELLED" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < give_up, [r.getMessage() for r in caplog.records]
                time.sleep(0.02)
        finally:
            release.set()
    assert not [r for r in caplog.records if r.name == "sievedb.errors"]  # not a server bug


def test_a_completed_client_stream_is_logged_ok(
    server_handle: tuple[Any, int], caplog: pytest.LogCaptureFixture
) -> None:
    """A client-streamed call is recorded when it terminates (see the cancel test above): a
    bulk load that completes is still logged OK, once, and never as CANCELLED."""
    _, port = server_handle
    caplog.set_level(logging.INFO, logger="sievedb.access")
    with Client(f"127.0.0.1:{port}") as client:
        client.create_collection("c", DIM)
        result = client.bulk_load("c", _vectors(50), batch_size=20)
        assert result.upserted == 50
    give_up = time.monotonic() + 10
    while not any("BulkLoad OK" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < give_up, [r.getMessage() for r in caplog.records]
        time.sleep(0.02)
    lines = [r.getMessage() for r in caplog.records if "BulkLoad" in r.getMessage()]
    assert len(lines) == 1 and "CANCELLED" not in lines[0], lines
