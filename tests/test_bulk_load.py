"""The bulk path: deferred indexing stays correct, survives restarts and kill -9, and streams.

* While the graph lags (indexer held back), every search equals the exact answer over all
  stored points: graph results are merged with an exact scan of the pending labels.
* Pending labels survive a checkpoint + restart and are indexed afterwards.
* `kill -9` of the server mid-load, restart, `sievedb load --resume`: the collection equals the
  source exactly (ids, vectors, attributes), with no duplicates.
* The client's peak RSS stays bounded when loading a file several times its chunk budget.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sievedb import Client
from sievedb.synthetic import clustered_vectors
from sievedb_server.core import collection as collection_mod
from sievedb_server.core.engine import Engine
from sievedb_server.core.types import (
    CollectionSpec,
    FieldSpec,
    FieldType,
    HnswParams,
    Metric,
    SearchParams,
)
from sievedb_server.filters.parser import parse as parse_filter


def _spec(name: str = "c", dim: int = 16, metric: Metric = Metric.L2) -> CollectionSpec:
    return CollectionSpec(
        name, dim, metric, HnswParams(full_scan_threshold=0),
        (FieldSpec("g", FieldType.INTEGER, True),),
    )


def _hold_indexer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Collections opened from now on never index in the background (the graph lags)."""
    monkeypatch.setattr(collection_mod.Collection, "_index_loop", lambda self: None)


@pytest.mark.parametrize("metric", [Metric.L2, Metric.COSINE])
def test_search_is_exact_over_pending_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric: Metric
) -> None:
    vecs, assign = clustered_vectors(3000, 16, seed=5)
    attrs: list[dict[str, Any] | None] = [{"g": int(c)} for c in assign]
    eng = Engine(tmp_path / "d")
    try:
        eng.create_collection(_spec(metric=metric))
        eng.upsert("c", list(range(1000)), vecs[:1000], attrs[:1000])  # in the graph
        _hold_indexer(monkeypatch)
        monkeypatch.setattr(collection_mod, "MERGE_BLOCK", 300)  # merge in several blocks
        coll = eng._get("c")
        coll._stop_indexer.set()  # this collection's indexer is already running: stop it
        coll._wake_indexer.set()
        coll._indexer.join()
        for off in range(1000, 3000, 500):
            eng.bulk_upsert("c", list(range(off, off + 500)), vecs[off:off + 500],
                            attrs[off:off + 500], offset=off)
        # Overwrite a graph point through the bulk path: updated in the graph at once.
        eng.bulk_upsert("c", [7], vecs[2999:3000], [{"g": 99}])
        info = eng.describe_collection("c")
        assert info.point_count == 3000 and info.indexed_count == 1000
        flt = parse_filter("g >= 2")
        for qi in range(0, 3000, 97):
            q = vecs[qi]
            for f in (None, flt):
                got = eng.search("c", q, SearchParams(k=10, explain=True), f)
                want = eng.search("c", q, SearchParams(k=10, exact=True), f)
                assert [h.id for h in got.hits] == [h.id for h in want.hits]
                assert got.plan is not None
                if not got.plan.strategy.endswith("exact"):
                    assert "not-yet-indexed" in got.plan.detail
        batch = eng.search_batch("c", vecs[2000:2010], SearchParams(k=5))
        exact = eng.search_batch("c", vecs[2000:2010], SearchParams(k=5, exact=True))
        assert [[h.id for h in r.hits] for r in batch] == [[h.id for h in r.hits] for r in exact]
        # Deleting a pending point removes it from pending too.
        eng.delete("c", [2500])
        assert eng._get("c").pending_count == 1999
    finally:
        eng.close()  # checkpoints a graph that lacks the pending points

    monkeypatch.undo()
    eng = Engine(tmp_path / "d")
    try:
        assert eng.wait_indexed("c", timeout=120)
        info = eng.describe_collection("c")
        assert info.point_count == info.indexed_count == 2999
        hit = eng.search("c", vecs[2222], SearchParams(k=1)).hits[0]
        assert hit.id == 2222
        assert eng.get("c", [7], with_vectors=True)[0].attributes == {"g": 99}
    finally:
        eng.close()


def test_bulk_chunk_is_all_or_nothing(tmp_path: Path) -> None:
    eng = Engine(tmp_path / "d")
    try:
        eng.create_collection(_spec())
        vecs = np.random.default_rng(1).standard_normal((100, 16)).astype(np.float32)
        eng.bulk_upsert("c", list(range(50)), vecs[:50], load_id="L", offset=0)
        bad = vecs[50:].copy()
        bad[20, 3] = np.inf
        with pytest.raises(Exception, match="row 70 contains NaN or Inf"):
            eng.bulk_upsert("c", list(range(50, 100)), bad, load_id="L", offset=50)
        with pytest.raises(Exception, match="row 61"):
            attrs: list[Any] = [None] * 50
            attrs[11] = {"g": "x"}
            eng.bulk_upsert("c", list(range(50, 100)), vecs[50:], attrs, load_id="L", offset=50)
        with pytest.raises(Exception, match="gap"):
            eng.bulk_upsert("c", list(range(60, 100)), vecs[60:], load_id="L", offset=60)
        assert eng.count("c") == 50 and eng.load_rows("c", "L") == 50
        # Duplicate ids inside one chunk: the last occurrence wins, no duplicate point.
        eng.bulk_upsert("c", [1, 1, 2], vecs[[10, 11, 12]], load_id="L", offset=50)
        assert eng.count("c") == 50
        got = eng.get("c", [1], with_vectors=True)[0].vector
        np.testing.assert_array_equal(got, vecs[11])
    finally:
        eng.close()


# --- kill -9 mid-load, then resume ---------------------------------------------------------


def _cli(port: int, *args: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "sievedb.cli", "load", *args,
           "--target", f"127.0.0.1:{port}", "--no-progress"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_kill_9_mid_load_then_resume(tmp_path: Path, spawn_server: Any) -> None:
    n, dim = 30_000, 16
    rng = np.random.default_rng(21)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    ids = [f"id-{i}" if i % 2 else str(i * 3) for i in range(n)]  # strings, some numeric
    attrs = [None if i % 11 == 0 else {"g": i % 13} for i in range(n)]
    np.save(tmp_path / "v.npy", vecs)
    (tmp_path / "ids.txt").write_text("".join(f"{x}\n" for x in ids))
    (tmp_path / "a.jsonl").write_text("".join((json.dumps(a) if a else "") + "\n" for a in attrs))
    args = ["c", str(tmp_path / "v.npy"), "--ids-file", str(tmp_path / "ids.txt"),
            "--id-type", "str", "--attributes", str(tmp_path / "a.jsonl"),
            "--batch-size", "100", "--load-id", "crash-test"]

    data_dir = tmp_path / "data"
    proc, port = spawn_server(data_dir)
    with Client(f"127.0.0.1:{port}") as client:
        client.create_collection("c", dim, "l2", m=8, ef_construction=32,
                                 schema={"g": "integer"})
        loader = _cli(port, *args)
        deadline = time.monotonic() + 120
        committed = 0
        while committed < 3000 and time.monotonic() < deadline and loader.poll() is None:
            committed = client.load_status("c", "crash-test").rows_committed
            time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    loader.communicate(timeout=60)
    assert committed >= 3000, "the load did not get far enough before the kill"
    assert loader.returncode != 0, "the load finished before the kill; make it longer"

    proc2, port2 = spawn_server(data_dir)
    with Client(f"127.0.0.1:{port2}") as client:
        resumed_from = client.load_status("c", "crash-test").rows_committed
        assert committed <= resumed_from < n
        loader = _cli(port2, *args, "--resume")
        _, err = loader.communicate(timeout=300)
        assert loader.returncode == 0, err.decode()
        assert f"at row {resumed_from}" in err.decode()
        info = client.describe_collection("c")
        assert info.point_count == n == info.indexed_count
        got = {p.id: p for p in client.iter_points("c", page_size=2000, with_vectors=True)}
        assert len(got) == n and set(got) == set(ids)
        for i in range(n):
            p = got[ids[i]]
            np.testing.assert_array_equal(p.vector, vecs[i])
            assert (p.attributes or {}) == (attrs[i] or {})
        assert client.search("c", vecs[n - 1], k=1).hits[0].id == ids[n - 1]
    proc2.send_signal(signal.SIGTERM)
    assert proc2.wait(timeout=60) == 0


# --- client memory ---------------------------------------------------------------------------


@pytest.mark.slow
def test_client_rss_stays_bounded(tmp_path: Path, server_handle: Any) -> None:
    _, port = server_handle
    n, dim = 60_000, 512  # 123 MB of float32, loaded in 256-row (0.5 MB) chunks
    path = tmp_path / "big.fbin"
    rng = np.random.default_rng(8)
    with open(path, "wb") as fh:
        fh.write(np.array([n, dim], dtype="<u4").tobytes())
        for _ in range(0, n, 5000):
            fh.write(rng.standard_normal((5000, dim)).astype(np.float32).tobytes())
    file_mb = path.stat().st_size / 2**20
    with Client(f"127.0.0.1:{port}") as client:
        client.create_collection("c", dim, "l2", m=4, ef_construction=8)
    # Run the CLI in a child that reports its own peak RSS: VmHWM of its own address space
    # (ru_maxrss would also count the forking pytest process, which hosts the server).
    code = (
        "import re, sys; from sievedb.cli import main; rc = main(sys.argv[1:]); "
        "status = open('/proc/self/status').read(); "
        "print('PEAK', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr); "
        "sys.exit(rc)"
    )
    loader = subprocess.run(
        [sys.executable, "-c", code, "load", "c", str(path), "--batch-size", "256", "--no-wait",
         "--no-progress", "--target", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert loader.returncode == 0, loader.stderr
    peak_mb = int(loader.stderr.split("PEAK")[-1].split()[0]) / 1024
    # The interpreter with numpy and grpc is ~50 MB; holding the file would add ~120 MB more.
    print(f"client peak RSS {peak_mb:.0f} MB loading a {file_mb:.0f} MB file")
    assert peak_mb < 40 + 0.6 * file_mb, f"client peak RSS {peak_mb:.0f} MB for {file_mb:.0f} MB"
    with Client(f"127.0.0.1:{port}") as client:
        assert client.count("c") == n
