"""Durability through real server processes: restart in a new process, and `kill -9`.

Every acknowledged upsert must survive a SIGKILL of the server: after a restart on the same
data folder the point is present with its vector and attributes, and search works.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np

from sievedb import Client
from sievedb.synthetic import clustered_vectors


def test_same_answers_from_a_new_process(tmp_path: Path, spawn_server) -> None:
    data_dir = tmp_path / "data"
    vecs, assign = clustered_vectors(6000, 32, seed=11)
    attrs = [{"cluster": int(c), "even": i % 2 == 0} for i, c in enumerate(assign)]
    proc, port = spawn_server(data_dir)
    with Client(f"127.0.0.1:{port}") as client:
        client.create_collection(
            "c", 32, "cosine", full_scan_threshold=0, schema={"cluster": "integer"}
        )
        client.upsert("c", list(range(6000)), vecs, attrs, batch_size=1500)
        client.delete("c", [1, 2, 3])
        before = [client.search("c", q, k=10, filter="cluster >= 3") for q in vecs[:30]]
        before_exact = [client.search("c", q, k=10, exact=True) for q in vecs[:30]]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0

    proc2, port2 = spawn_server(data_dir)
    with Client(f"127.0.0.1:{port2}") as client:
        info = client.describe_collection("c")
        assert info.point_count == 5997 and info.indexed_count == 5997
        after = [client.search("c", q, k=10, filter="cluster >= 3") for q in vecs[:30]]
        after_exact = [client.search("c", q, k=10, exact=True) for q in vecs[:30]]
        assert [list(r.ids) for r in after] == [list(r.ids) for r in before]
        assert [list(r.ids) for r in after_exact] == [list(r.ids) for r in before_exact]
        got = client.get("c", [0, 5999], with_vectors=True)
        assert got[0].attributes == attrs[0]
        np.testing.assert_allclose(
            got[1].vector, vecs[5999] / np.linalg.norm(vecs[5999]), rtol=1e-6
        )
    proc2.send_signal(signal.SIGTERM)
    assert proc2.wait(timeout=60) == 0


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path, spawn_server) -> None:
    data_dir = tmp_path / "data"
    dim = 16
    proc, port = spawn_server(data_dir)
    acked: dict[str, int] = {}  # id -> batch number that wrote it
    rng = np.random.default_rng(12)
    batches = [rng.standard_normal((200, dim)).astype(np.float32) for _ in range(400)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        with Client(f"127.0.0.1:{port}", timeout=10) as client:
            try:
                for b, vecs in enumerate(batches):
                    if stop.is_set():
                        return
                    # Ids repeat across batches so later batches overwrite earlier points.
                    ids = [f"p{(b * 150 + i) % 20_000}" for i in range(len(vecs))]
                    client.upsert(
                        "c", ids, vecs, [{"batch": b, "i": i} for i in range(len(vecs))],
                        batch_size=len(vecs),
                    )
                    for pid in ids:
                        acked[pid] = b  # only after the server acknowledged the batch
            except Exception as exc:  # the kill makes the in-flight call fail
                errors.append(exc)

    with Client(f"127.0.0.1:{port}") as client:
        client.create_collection("c", dim, "l2", schema={"batch": "integer"})
    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < 4000 and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stop.set()
    thread.join(timeout=30)
    assert len(acked) >= 4000, "the writer did not get far enough before the kill"
    snapshot = dict(acked)

    proc2, port2 = spawn_server(data_dir)
    with Client(f"127.0.0.1:{port2}") as client:
        ids = sorted(snapshot)
        points = client.get("c", ids, with_vectors=True)
        assert len(points) == len(ids)
        for p in points:
            b = p.attributes["batch"]
            # The stored version is the acknowledged one or a later (possibly unacked) write.
            assert b >= snapshot[p.id]
            np.testing.assert_array_equal(p.vector, batches[b][p.attributes["i"]])
        info = client.describe_collection("c")
        assert info.indexed_count == info.point_count
        q = points[0].vector
        hit = client.search("c", q, k=1).hits[0]
        assert hit.id == points[0].id
        # Posting lists survived too: the filter path agrees with the attributes.
        b0 = points[0].attributes["batch"]
        n_b0 = sum(1 for p in points if p.attributes["batch"] == b0)
        assert client.count("c", filter=f"batch == {b0}") >= n_b0
    proc2.send_signal(signal.SIGTERM)
    assert proc2.wait(timeout=60) == 0
