"""Collection snapshots: online consistency, restore into a new server, identical answers,
refusal of bad archives with the right status, and the CLI round trip.

The oracle for "the source state at the snapshot's point" is the writer's own log of
acknowledged operations, replayed up to the snapshot's watermark (every write returns its
watermark, and one writer thread applies them in order).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import signal
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from sievedb import Client, errors
from sievedb.cli import main
from sievedb_proto.v1 import sievedb_pb2 as pb
from sievedb_server.core.engine import Engine
from sievedb_server.core.snapshots import snapshots_of
from sievedb_server.core.verify import find_problems
from sievedb_server.errors import CollectionNotFound
from sievedb_server.filters.planner import PlannerConfig
from sievedb_server.transport.server import SieveServer, create_server

DIM = 16
SCHEMA = {"cat": "keyword", "n": "integer", "tags": "keyword_list"}
FILTERS: dict[str, Callable[[dict[str, Any]], bool]] = {
    'cat == "c1"': lambda a: a["cat"] == "c1",
    "n >= 60": lambda a: a["n"] >= 60,
    '"t2" in tags': lambda a: "t2" in a["tags"],
    'cat == "c2" and n < 40': lambda a: a["cat"] == "c2" and a["n"] < 40,
}
State = dict[int, tuple[np.ndarray, dict[str, Any]]]


def _points(rng: np.random.Generator, ids: list[int]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    vectors = rng.normal(size=(len(ids), DIM)).astype(np.float32)
    attrs = [
        {
            "cat": f"c{int(rng.integers(5))}",
            "n": int(rng.integers(100)),
            "tags": sorted({f"t{int(t)}" for t in rng.integers(6, size=2)}),
        }
        for _ in ids
    ]
    return vectors, attrs


def _create(db: Client, name: str = "items") -> None:
    # l2 keeps stored vectors bit-identical to what was sent; a small full-scan threshold
    # makes unfiltered searches use the graph; a small graph keeps the suite quick.
    db.create_collection(
        name, DIM, "l2", m=8, ef_construction=40, full_scan_threshold=100, schema=SCHEMA
    )


def _load(db: Client, rng: np.random.Generator, n: int, name: str = "items") -> State:
    ids = list(range(n))
    vectors, attrs = _points(rng, ids)
    db.upsert(name, ids, vectors, attrs)
    return {i: (vectors[j], attrs[j]) for j, i in enumerate(ids)}


def _dump(db: Client, name: str) -> State:
    return {
        p.id: (p.vector, p.attributes)
        for p in db.iter_points(name, page_size=1000, with_vectors=True)
    }


def _assert_same_state(got: State, want: State) -> None:
    assert sorted(got) == sorted(want)
    for pid, (vec, attrs) in want.items():
        assert np.array_equal(got[pid][0], vec), pid
        assert got[pid][1] == attrs, pid


def _exact_top(state: State, query: np.ndarray, k: int, flt: Callable[..., bool] | None) -> list:
    ids = [i for i, (_, a) in state.items() if flt is None or flt(a)]
    mat = np.stack([state[i][0] for i in ids])
    dist = ((mat - query) ** 2).sum(axis=1)
    return [ids[j] for j in np.argsort(dist, kind="stable")[:k]]


# --- online snapshot, restore into a new server process ----------------------------------


class Writer(threading.Thread):
    """Upserts (new and existing ids) and deletes until stopped; logs (watermark, op)."""

    def __init__(self, db: Client, first_new_id: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.db, self.next_id = db, first_new_id
        self.rng = np.random.default_rng(seed)
        self.acked: list[tuple[int, str, Any]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.rng.random() < 0.7:
                    fresh = list(range(self.next_id, self.next_id + 10))
                    self.next_id += 10
                    ids = fresh + [int(i) for i in self.rng.integers(self.next_id, size=10)]
                    ids = list(dict.fromkeys(ids))
                    vectors, attrs = _points(self.rng, ids)
                    wm = self.db.upsert("items", ids, vectors, attrs).watermark
                    self.acked.append((wm, "upsert", (ids, vectors, attrs)))
                else:
                    ids = [int(i) for i in self.rng.integers(self.next_id, size=8)]
                    wm = self.db.delete("items", ids).watermark
                    self.acked.append((wm, "delete", ids))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def state_at(self, initial: State, watermark: int) -> State:
        state = dict(initial)
        for wm, kind, payload in self.acked:
            if wm > watermark:
                continue
            if kind == "upsert":
                ids, vectors, attrs = payload
                for j, pid in enumerate(ids):
                    state[pid] = (vectors[j], attrs[j])
            else:
                for pid in payload:
                    state.pop(pid, None)
        return state


def _wait_for(cond: Callable[[], bool], writer: Writer) -> None:
    event = threading.Event()
    while not cond():
        assert writer.is_alive(), writer.error
        event.wait(0.01)


def test_online_snapshot_restores_a_consistent_state_in_a_new_server_process(
    server: tuple[Client, Engine], spawn_server: Any, tmp_path: Path
) -> None:
    db, _ = server
    _create(db)
    initial = _load(db, np.random.default_rng(1), 2000)
    writer = Writer(Client(db.target), first_new_id=2000, seed=2)
    writer.start()
    try:
        _wait_for(lambda: len(writer.acked) >= 20, writer)
        acked_before = writer.acked[-1][0]
        snap = db.create_snapshot("items")
        done_at_snapshot = len(writer.acked)
        _wait_for(lambda: len(writer.acked) >= done_at_snapshot + 20, writer)
    finally:
        writer.stop.set()
        writer.join()
    assert writer.error is None
    # It holds every write acknowledged before the call, and writes went on around it.
    assert snap.watermark >= acked_before
    assert any(wm > snap.watermark for wm, _, _ in writer.acked)
    want = writer.state_at(initial, snap.watermark)
    assert snap.point_count == len(want)
    assert [s.name for s in db.list_snapshots("items")] == [snap.name]

    archive = db.download_snapshot(snap.name, tmp_path)
    assert archive == tmp_path / snap.name
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == snap.sha256

    data_dir = tmp_path / "restored-server"
    proc, port = spawn_server(data_dir)
    with Client(f"127.0.0.1:{port}") as target:
        info = target.restore_snapshot(archive, "restored")
        # The graph was loaded as saved at the snapshot's watermark, not rebuilt.
        assert (info.watermark, info.index_watermark) == (snap.watermark, snap.watermark)
        assert info.point_count == info.indexed_count == len(want)
        _assert_same_state(_dump(target, "restored"), want)
        rng = np.random.default_rng(3)
        found = total = 0
        for query in rng.normal(size=(10, DIM)).astype(np.float32):
            for text, flt in [(None, None), *FILTERS.items()]:
                exact = target.search("restored", query, 10, filter=text, exact=True)
                assert exact.ids.tolist() == _exact_top(want, query, 10, flt)
            ann = target.search("restored", query, 10)
            found += len(set(ann.ids.tolist()) & set(_exact_top(want, query, 10, None)))
            total += 10
        assert found / total >= 0.9
        for text, flt in FILTERS.items():
            assert target.count("restored", text) == sum(flt(a) for _, a in want.values())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    reopened = Engine(data_dir)
    try:
        assert find_problems(reopened.collection("restored")) == []
    finally:
        reopened.close()


# --- identical answers; models travel along -----------------------------------------------

PLANNER = PlannerConfig(exact_budget=1_000)  # filtered searches go through the graph


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[Client, Engine, Client, Engine]]:
    engines = [Engine(tmp_path / d, planner=PLANNER) for d in ("a", "b")]
    servers: list[SieveServer] = []
    clients = []
    for eng in engines:
        srv, port = create_server("127.0.0.1:0", eng.data_dir, engine=eng, max_workers=4)
        srv.start()
        servers.append(srv)
        clients.append(Client(f"127.0.0.1:{port}"))
    yield clients[0], engines[0], clients[1], engines[1]
    for client, srv, eng in zip(clients, servers, engines, strict=True):
        client.close()
        srv.shutdown(grace=1.0, close_engine=False)
        eng.close()


def _answers(db: Client, name: str) -> list[Any]:
    rng = np.random.default_rng(7)
    out: list[Any] = []
    for query in rng.normal(size=(15, DIM)).astype(np.float32):
        for text in [None, *FILTERS]:
            for exact in (False, True):
                r = db.search(name, query, 10, filter=text, exact=exact, explain=True)
                out.append((r.ids.tolist(), r.scores.tolist(), r.plan.strategy))
    out.append([db.count(name, text) for text in FILTERS])
    return out


def test_restored_collection_answers_exactly_like_the_source(
    two_servers: tuple[Client, Engine, Client, Engine], tmp_path: Path
) -> None:
    src, src_engine, dst, dst_engine = two_servers
    _create(src)
    rng = np.random.default_rng(4)
    _load(src, rng, 2500)
    src.delete("items", list(range(0, 2500, 7)))
    probe = rng.normal(size=(20, DIM)).astype(np.float32)
    src.set_probe_set("items", [f"p{i}" for i in range(20)], [i % 4 for i in range(20)])
    src.register_model("items", "m1", dim=DIM, probe_vectors=probe)
    snap = src.create_snapshot("items")
    archive = src.download_snapshot(snap.name, tmp_path / "items.snapshot")

    dst.restore_snapshot(archive, "copy")
    expected = _answers(src, "items")
    strategies = {a[2] for a in expected[:-1]}
    assert {"hnsw", "exact"} < strategies  # ANN plans (plain and filtered) are compared too
    assert _answers(dst, "copy") == expected
    assert [m.id for m in dst.list_models("copy")] == ["m1"]
    assert find_problems(dst_engine.collection("copy")) == []
    # From the server's own copy, into the same server under another name.
    info = src.restore_server_snapshot(snap.name, "again")
    assert info.point_count == snap.point_count
    assert _answers(src, "again") == expected
    assert find_problems(src_engine.collection("again")) == []


def test_snapshot_during_a_bulk_load_keeps_points_the_graph_has_not_reached(
    server: tuple[Client, Engine], tmp_path: Path
) -> None:
    """Points committed but not yet in the graph (pending) are in the LMDB copy; the restored
    collection indexes them itself."""
    db, engine = server
    _create(db)
    source = engine.collection("items")
    source._stop_indexer.set()  # park the source's background indexer: every point stays pending
    source._wake_indexer.set()
    source._indexer.join()
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(3000, DIM)).astype(np.float32)
    db.bulk_load("items", vectors, batch_size=500)
    assert source.pending_count == 3000
    snap = db.create_snapshot("items")
    assert snap.point_count == 3000
    db.restore_server_snapshot(snap.name, "copy")
    assert db.wait_indexed("copy", poll=0.05, deadline=60).indexed_count == 3000
    assert find_problems(engine.collection("copy")) == []
    hits = db.search("copy", vectors[1234], 1)
    assert hits.ids.tolist() == [1234]


class _UnpatchedLmdb:
    """An Environment whose copy() refuses a transaction, as py-lmdb built without its LMDB
    patch (LMDB_PURE, a system LMDB) does."""

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def copy(self, path: str, compact: bool = False, txn: Any = None) -> None:
        if txn is not None:
            raise TypeError("Non-patched LMDB doesn't support transaction with env.copy")
        self._env.copy(path, compact=compact)


def test_without_transaction_copies_a_snapshot_holds_writes_and_stays_consistent(
    server: tuple[Client, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, engine = server
    _create(db)
    want = _load(db, np.random.default_rng(10), 500)
    store = engine.collection("items").store
    monkeypatch.setattr(store, "env", _UnpatchedLmdb(store.env))
    snap = db.create_snapshot("items")
    monkeypatch.undo()
    info = db.restore_server_snapshot(snap.name, "copy")
    assert info.index_watermark == info.watermark == snap.watermark
    _assert_same_state(_dump(db, "copy"), want)
    assert find_problems(engine.collection("copy")) == []


# --- statuses ----------------------------------------------------------------------------


def test_unknown_names_and_clashes_get_the_right_status(
    server: tuple[Client, Engine], tmp_path: Path
) -> None:
    db, _ = server
    _create(db)
    _load(db, np.random.default_rng(5), 50)
    ghost = "items-20260101T000000Z-abcdef.snapshot"
    with pytest.raises(errors.CollectionNotFound):
        db.create_snapshot("nope")
    with pytest.raises(errors.CollectionNotFound):
        db.list_snapshots("nope")
    for call in (db.delete_snapshot, lambda n: db.download_snapshot(n, tmp_path)):
        with pytest.raises(errors.NotFound) as info:
            call(ghost)
        assert info.value.reason == "SNAPSHOT_NOT_FOUND"
        with pytest.raises(errors.InvalidArgument):
            call("../../etc/passwd")
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(errors.NotFound):
        db.restore_server_snapshot(ghost, "other")

    snap = db.create_snapshot("items")
    with pytest.raises(errors.AlreadyExists):
        db.restore_server_snapshot(snap.name, "items")
    with pytest.raises(errors.AlreadyExists):  # refused before the upload is read
        db.restore_snapshot(db.download_snapshot(snap.name, tmp_path), "items")
    db.set_alias("items_alias", "items")
    with pytest.raises(errors.AlreadyExists):
        db.restore_server_snapshot(snap.name, "items_alias", overwrite=True)
    with pytest.raises(errors.InvalidArgument):
        db.restore_server_snapshot(snap.name, "bad/name")
    # A snapshot of an alias is of its target; overwrite replaces the collection in place.
    assert db.create_snapshot("items_alias").collection == "items"
    db.delete("items", list(range(10)))
    assert db.count("items") == 40
    info = db.restore_server_snapshot(snap.name, "items", overwrite=True)
    assert info.point_count == 50 and db.count("items_alias") == 50
    assert db.delete_snapshot(snap.name)
    assert snap.name not in {s.name for s in db.list_snapshots()}


def _upload(db: Client, data: bytes, name: str, sha256: str = "") -> grpc.StatusCode:
    """Send raw archive bytes (no client-side checks) and return the status code."""
    requests = [pb.RestoreSnapshotRequest(collection=name, sha256=sha256)]
    requests += [
        pb.RestoreSnapshotRequest(data=data[i : i + 65536]) for i in range(0, len(data), 65536)
    ]
    try:
        db._stub.RestoreSnapshot(iter(requests), timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _retar(archive: bytes, edit: Callable[[list[tuple[tarfile.TarInfo, bytes]]], Any]) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    members = edit(members) or members
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for member, data in members:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return out.getvalue()


def _manifest_format(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    doc = json.loads(members[0][1])
    doc["format"] = 99
    members[0] = (members[0][0], json.dumps(doc).encode())


def _traversal(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    members.insert(1, (tarfile.TarInfo("../../escaped.txt"), b"owned"))


def _symlink(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    link = tarfile.TarInfo("index.hnsw")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members[2] = (link, b"")


def _manifest_last(members: list[tuple[tarfile.TarInfo, bytes]]) -> list:
    return members[1:] + members[:1]


def _flip(archive: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        offset = tar.getmember("store/data.mdb").offset_data
    damaged = bytearray(archive)
    damaged[offset + 5000] ^= 0xFF
    return bytes(damaged)


BAD_ARCHIVES: dict[str, tuple[Callable[[bytes], bytes], grpc.StatusCode]] = {
    "random bytes": (
        lambda a: np.random.default_rng(0).bytes(20_000),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    "empty": (lambda a: b"", grpc.StatusCode.INVALID_ARGUMENT),
    "truncated": (lambda a: a[: len(a) // 2], grpc.StatusCode.DATA_LOSS),
    "bit flip": (_flip, grpc.StatusCode.DATA_LOSS),
    "unknown format": (lambda a: _retar(a, _manifest_format), grpc.StatusCode.INVALID_ARGUMENT),
    "path traversal": (lambda a: _retar(a, _traversal), grpc.StatusCode.INVALID_ARGUMENT),
    "symlink member": (lambda a: _retar(a, _symlink), grpc.StatusCode.INVALID_ARGUMENT),
    "manifest not first": (lambda a: _retar(a, _manifest_last), grpc.StatusCode.INVALID_ARGUMENT),
}


def test_bad_archives_are_refused_and_leave_nothing_behind(
    server: tuple[Client, Engine], tmp_path: Path
) -> None:
    db, engine = server
    _create(db)
    _load(db, np.random.default_rng(6), 300)
    snap = db.create_snapshot("items")
    good = db.download_snapshot(snap.name, tmp_path).read_bytes()
    for label, (damage, code) in BAD_ARCHIVES.items():
        data = damage(good)
        assert _upload(db, data, "victim", hashlib.sha256(data).hexdigest()) == code, label
    # The right archive with the wrong expected checksum: damaged in transfer.
    assert _upload(db, good, "victim", "0" * 64) == grpc.StatusCode.DATA_LOSS
    assert _upload(db, good, "victim", "not-hex") == grpc.StatusCode.INVALID_ARGUMENT
    # The client checks what it can before sending anything.
    with pytest.raises(errors.InvalidArgument):
        db.restore_snapshot(tmp_path / "missing.snapshot", "victim")
    # Nothing became visible, nothing escaped, nothing was left half-done.
    assert "victim" not in {c.name for c in db.list_collections()}
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert not list(tmp_path.rglob("escaped.txt"))
    assert [p.name for p in engine.root.iterdir()] == ["items"]
    assert not list(snapshots_of(engine).uploads.glob("*"))
    # And the good one still restores.
    assert _upload(db, good, "victim", hashlib.sha256(good).hexdigest()) == grpc.StatusCode.OK
    assert db.count("victim") == 300


def test_a_drop_waits_for_a_snapshot_in_progress(engine: Engine) -> None:
    from sievedb_server.core.types import CollectionSpec, Metric

    engine.create_collection(CollectionSpec("items", DIM, Metric.L2))
    coll = engine.collection("items")
    with coll.pinned():  # what a snapshot's LMDB copy holds
        dropper = threading.Thread(target=engine.drop_collection, args=("items",))
        dropper.start()
        dropper.join(0.3)
        assert dropper.is_alive()  # the environment stays open under the copy
    dropper.join(30)
    assert not dropper.is_alive()
    with pytest.raises(CollectionNotFound), coll.pinned():
        pass


# --- CLI -----------------------------------------------------------------------------------


def test_cli_round_trip(
    server: tuple[Client, Engine], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = server
    _create(db)
    _load(db, np.random.default_rng(8), 200)
    target = ["--target", db.target]
    assert main(["snapshot", "list", *target]) == 0
    assert "no snapshots" in capsys.readouterr().out
    assert main(["snapshot", "create", "items", *target]) == 0
    out = capsys.readouterr().out
    name = re.search(r"created snapshot (\S+\.snapshot)", out)[1]  # type: ignore[index]
    assert "200 points" in out
    assert main(["snapshot", "list", "items", *target]) == 0
    assert name in capsys.readouterr().out
    assert main(["snapshot", "download", name, str(tmp_path), *target]) == 0
    assert (tmp_path / name).is_file()
    assert main(["snapshot", "restore", str(tmp_path / name), "copy", *target]) == 0
    assert "200 points" in capsys.readouterr().out
    assert main(["snapshot", "restore", "--server", name, "copy2", *target]) == 0
    assert main(["snapshot", "restore", "--server", name, "copy2", *target]) == 1
    assert "COLLECTION_EXISTS" in capsys.readouterr().err
    assert db.count("copy") == db.count("copy2") == 200
    assert main(["snapshot", "delete", name, *target]) == 0
    assert main(["snapshot", "delete", name, *target]) == 1
    assert "SNAPSHOT_NOT_FOUND" in capsys.readouterr().err


def test_a_snapshot_larger_than_the_store_cap_is_refused(tmp_path: Path) -> None:
    from sievedb_server.core.types import CollectionSpec, Metric
    from sievedb_server.errors import StoreFull

    source, capped = Engine(tmp_path / "a"), Engine(tmp_path / "b", store_max_bytes=64 * 1024)
    try:
        source.create_collection(CollectionSpec("items", DIM, Metric.L2))
        vectors = np.random.default_rng(11).normal(size=(2000, DIM)).astype(np.float32)
        source.upsert("items", list(range(2000)), vectors)
        service = snapshots_of(source)
        snap = service.create("items")
        with pytest.raises(StoreFull):
            snapshots_of(capped).restore_file(service.root / "items" / snap.name, "items")
        assert capped.list_collections() == []
        assert [p.name for p in capped.root.iterdir()] == []
    finally:
        source.close()
        capped.close()


def test_restore_counts_against_the_collection_limit(tmp_path: Path) -> None:
    from dataclasses import replace

    from sievedb_server.core.types import CollectionSpec, Metric
    from sievedb_server.errors import ResourceExhausted
    from sievedb_server.limits import DEFAULT_LIMITS

    engine = Engine(tmp_path / "data", limits=replace(DEFAULT_LIMITS, max_collections=1))
    try:
        engine.create_collection(CollectionSpec("items", DIM, Metric.L2))
        service = snapshots_of(engine)
        archive = service.root / "items" / service.create("items").name
        with pytest.raises(ResourceExhausted):
            service.restore_file(archive, "second")
        service.restore_file(archive, "items", overwrite=True)  # a replacement adds none
        assert [c.spec.name for c in engine.list_collections()] == ["items"]
    finally:
        engine.close()


def test_a_stalled_upload_times_out(engine: Engine) -> None:
    from sievedb_server.limits import Limits

    srv, port = create_server(
        "127.0.0.1:0",
        engine.data_dir,
        engine=engine,
        max_workers=4,
        limits=Limits(stream_idle_timeout_s=0.5),
    )
    srv.start()
    release = threading.Event()

    def stalled() -> Iterator[pb.RestoreSnapshotRequest]:
        yield pb.RestoreSnapshotRequest(collection="victim")
        release.wait(30)  # sends nothing more, never half-closes

    try:
        with Client(f"127.0.0.1:{port}") as db:
            with pytest.raises(grpc.RpcError) as info:
                db._stub.RestoreSnapshot(stalled(), timeout=20)
            assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert db.list_collections() == []
    finally:
        release.set()
        srv.shutdown(grace=1, close_engine=False)
    assert not list(snapshots_of(engine).uploads.glob("*"))
