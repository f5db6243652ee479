"""Running out of space: LMDB map full, a per-store cap, and the OS refusing to grow a file.

In every case the write fails with RESOURCE_EXHAUSTED (StoreFull), nothing of it is applied
(LMDB transaction aborted, in-memory mirror untouched), earlier data stays readable and
searchable, `find_problems` stays clean, and writes succeed again once there is room.
The OS case uses RLIMIT_FSIZE (writes past it fail with EFBIG; CPython ignores SIGXFSZ),
in this process around one call, and for a whole subprocess server.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import free_port, wait_for_serving
from sievedb import Client
from sievedb.errors import SieveDBError
from sievedb_server.core.engine import Engine
from sievedb_server.core.types import CollectionSpec, FieldSpec, FieldType, Metric, SearchParams
from sievedb_server.core.verify import find_problems
from sievedb_server.errors import StoreFull
from sievedb_server.transport.server import create_server

CAP = 1 << 20  # 1 MiB of LMDB pages per collection


def _spec(dim: int, *, tag: bool = True) -> CollectionSpec:
    schema = (FieldSpec("tag", FieldType.KEYWORD),) if tag else ()
    return CollectionSpec("c", dim, Metric.L2, schema=schema)


def _vecs(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes fail with EFBIG in this process while the block runs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN  # CPython's default
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _state(engine: Engine) -> tuple[int, int, int]:
    coll = engine.collection("c")
    return coll.live_count, coll.watermark, int(np.count_nonzero(coll.vectors.live))


def test_cap_refuses_writes_over_grpc_keeps_data_and_makes_room_after_deletes(
    tmp_path: Path,
) -> None:
    engine = Engine(tmp_path / "data", checkpoint_interval_s=3600, store_max_bytes=CAP)
    srv, port = create_server("127.0.0.1:0", engine.data_dir, engine=engine)
    srv.start()
    try:
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            client.create_collection("c", 32, "l2", schema={"tag": "keyword"})
            acked = 0
            vecs = _vecs(20_000, 32, 1)
            with pytest.raises(SieveDBError) as info:
                for start in range(0, len(vecs), 250):
                    batch = vecs[start : start + 250]
                    client.upsert("c", list(range(start, start + len(batch))), batch,
                                  [{"tag": f"t{i % 7}"} for i in range(len(batch))])
                    acked = start + len(batch)
            assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert info.value.reason == "STORE_FULL"
            assert 0 < acked < len(vecs)
            before = _state(engine)
            assert before[0] == acked
            assert client.count("c") == acked
            refused = list(range(acked, acked + 250))
            assert client.get("c", refused, allow_missing=True) == []
            hit = client.search("c", vecs[acked - 1], k=1, exact=True).hits[0]
            assert hit.id == acked - 1
            assert client.count("c", 'tag == "t3"') == sum(
                1 for start in range(0, acked, 250) for i in range(min(250, acked - start))
                if i % 7 == 3
            )
            assert find_problems(engine.collection("c")) == []

            # Deletes still commit at the cap (headroom), and free room for new writes.
            assert client.delete("c", list(range(acked // 2))).deleted == acked // 2
            client.upsert("c", refused, vecs[acked : acked + 250])
            assert client.count("c") == acked - acked // 2 + 250
    finally:
        srv.shutdown(grace=1.0, close_engine=True)
    reopened = Engine(tmp_path / "data", checkpoint_interval_s=3600, store_max_bytes=CAP)
    try:
        coll = reopened.collection("c")
        assert coll.live_count == acked - acked // 2 + 250
        assert coll.wait_indexed(timeout=60)
        assert find_problems(coll) == []
    finally:
        reopened.close()


def test_lmdb_map_full_inside_a_batch_is_store_full(tmp_path: Path) -> None:
    # The map is cap + headroom (16 MiB); one 24 MB batch overflows it while LMDB
    # allocates pages for its puts (MDB_MAP_FULL), before any cap check could run.
    engine = Engine(tmp_path, checkpoint_interval_s=3600, store_max_bytes=CAP)
    try:
        engine.create_collection(_spec(128))
        engine.upsert("c", list(range(100)), _vecs(100, 128, 2), [{"tag": "x"}] * 100)
        before = _state(engine)
        with pytest.raises(StoreFull, match="MDB_MAP_FULL"):
            engine.upsert("c", list(range(100, 50_100)), _vecs(50_000, 128, 3))
        assert _state(engine) == before
        found = engine.search("c", _vecs(100, 128, 2)[7], SearchParams(k=1, exact=True))
        assert found.hits[0].id == 7
        assert find_problems(engine.collection("c")) == []
        engine.upsert("c", [100], _vecs(1, 128, 4))  # small writes still fit
        assert engine.count("c") == 101
    finally:
        engine.close()


def test_vector_file_that_cannot_grow_refuses_the_write(tmp_path: Path) -> None:
    engine = Engine(tmp_path, checkpoint_interval_s=3600)
    try:
        engine.create_collection(_spec(128, tag=False))
        vecs = _vecs(3000, 128, 5)
        engine.upsert("c", list(range(1000)), vecs[:1000])
        before = _state(engine)
        coll = engine.collection("c")
        capacity = coll.vectors.capacity
        # 2000 more rows need 1.5 MB of vector file; LMDB has not written the batch yet.
        with file_size_limit(1 << 20), pytest.raises(StoreFull, match="vector file"):
            engine.upsert("c", list(range(1000, 3000)), vecs[1000:])
        assert _state(engine) == before
        assert coll.vectors.capacity == capacity
        assert engine.get("c", [1000], allow_missing=True) == []
        assert find_problems(coll) == []
        engine.upsert("c", list(range(1000, 3000)), vecs[1000:])  # room again
        assert engine.count("c") == 3000
        assert np.array_equal(engine.get("c", [2999], with_vectors=True)[0].vector, vecs[2999])
    finally:
        engine.close()


def test_lmdb_file_that_cannot_grow_refuses_the_write(tmp_path: Path) -> None:
    engine = Engine(tmp_path, checkpoint_interval_s=3600)
    try:
        engine.create_collection(_spec(4, tag=False))
        big = {"blob": "x" * 4000}  # LMDB grows ~4 KB a point, the vector file 16 B
        engine.upsert("c", list(range(100)), _vecs(100, 4, 6), [big] * 100)
        before = _state(engine)
        size = (tmp_path / "collections" / "c" / "store" / "data.mdb").stat().st_size
        with file_size_limit(size + (256 << 10)), pytest.raises(StoreFull, match="store"):
            engine.upsert("c", list(range(100, 400)), _vecs(300, 4, 7), [big] * 300)
        assert _state(engine) == before
        assert engine.get("c", [99])[0].attributes == big
        assert find_problems(engine.collection("c")) == []
        engine.upsert("c", list(range(100, 400)), _vecs(300, 4, 7), [big] * 300)
        assert engine.count("c") == 400
    finally:
        engine.close()


def test_graph_save_on_a_full_disk_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    engine = Engine(tmp_path, checkpoint_interval_s=3600)
    try:
        engine.create_collection(_spec(64, tag=False))
        engine.upsert("c", list(range(100)), _vecs(100, 64, 8))
        coll = engine.collection("c")
        assert coll.checkpoint()
        graph, stamp = coll.graph.graph_path, coll.graph.stamp_path
        saved = (graph.read_bytes(), stamp.read_bytes())
        engine.upsert("c", list(range(100, 3000)), _vecs(2900, 64, 9))
        with file_size_limit(256 << 10), pytest.raises(StoreFull, match="graph"):
            coll.checkpoint()
        assert (graph.read_bytes(), stamp.read_bytes()) == saved
        assert not list(graph.parent.glob("*.tmp"))
        assert coll.dirty
        assert coll.checkpoint()
    finally:
        engine.close()
    reopened = Engine(tmp_path, checkpoint_interval_s=3600)
    try:
        assert reopened.count("c") == 3000
        assert find_problems(reopened.collection("c")) == []
    finally:
        reopened.close()


def _limited_server(data_dir: Path, log: Path, limit: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [sys.executable, "-m", "sievedb.cli", "serve", "--data-dir", str(data_dir),
           "--port", str(port), "--log-level", "warning"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    if limit:  # before the server has written anything near the limit
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, limit))
    wait_for_serving(port, proc, log, timeout=60)
    return proc, port


def test_disk_full_subprocess_server_fails_cleanly_and_recovers(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    vecs = _vecs(20_000, 64, 10)
    proc, port = _limited_server(data_dir, log, 2 << 20)
    try:
        acked = 0
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            client.create_collection("c", 64, "l2")
            with pytest.raises(SieveDBError) as info:
                for start in range(0, len(vecs), 500):
                    client.upsert("c", list(range(start, start + 500)), vecs[start : start + 500])
                    acked = start + 500
            assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
            assert 0 < acked < len(vecs)
            assert client.count("c") == acked
            assert client.search("c", vecs[3], k=1, exact=True).hits[0].id == 3
            assert client.get("c", [acked], allow_missing=True) == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # a failed final checkpoint is logged, not fatal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc, port = _limited_server(data_dir, log, 0)
    try:
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            assert client.count("c") == acked
            client.upsert("c", list(range(acked, acked + 500)), vecs[acked : acked + 500])
            assert client.count("c") == acked + 500
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    engine = Engine(data_dir, checkpoint_interval_s=3600)
    try:
        assert engine.count("c") == acked + 500
        assert find_problems(engine.collection("c")) == []
    finally:
        engine.close()
