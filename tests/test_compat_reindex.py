"""Aliases, and the zero-downtime shadow re-index: concurrent queries and writes never fail, the
switch is atomic, rollback works, and a crash during the re-index leaves the old model serving."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import SpawnServer
from sievedb import Client
from sievedb.compat_models import model_zoo
from sievedb.errors import AlreadyExists, CollectionNotFound, FailedPrecondition, SieveDBError
from sievedb.upgrade import ShadowReindex, backfill_order
from sievedb_server.core.engine import Engine
from sievedb_server.core.types import CollectionSpec, SearchParams


@pytest.fixture(scope="module")
def zoo() -> tuple:
    data, models = model_zoo(2)
    px, py = data.sample(30, 302)
    gx, gy = data.sample(40, 402)
    return models, px, py, gx, gy


def source(db: Client, zoo: tuple, name: str = "items_v1") -> None:
    models, px, py, gx, gy = zoo
    db.create_collection(name, dim=9)
    db.set_probe_set(name, [f"p{i}" for i in range(len(py))], py)
    db.register_model(name, "v1", 9, probe_vectors=models["v1"].embed(px))
    db.upsert(name, list(range(len(gy))), models["v1"].embed(gx), [{"label": int(c)} for c in gy])
    db.set_alias("items", name)


def test_aliases_resolve_everywhere_and_persist(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "data")
    try:
        engine.create_collection(CollectionSpec("a", 3))
        engine.create_collection(CollectionSpec("b", 3))
        exists = lambda n: n in engine._collections
        engine.aliases.set("live", "a", exists)
        engine.upsert("live", [1], np.ones((1, 3), np.float32))
        assert engine.count("a") == 1 and engine.describe_collection("live").spec.name == "a"
        assert engine.search("live", np.ones(3, np.float32), SearchParams(k=1)).hits[0].id == 1
        alias = engine.aliases.set("live", "b", exists)
        assert (alias.collection, alias.previous) == ("b", "a") and engine.count("live") == 0
        from sievedb_server.errors import AlreadyExists as AE
        from sievedb_server.errors import FailedPrecondition as FP

        with pytest.raises(AE):
            engine.aliases.set("a", "b", exists)  # an alias may not shadow a collection
        with pytest.raises(AE):
            engine.create_collection(CollectionSpec("live", 3))
        with pytest.raises(FP):
            engine.drop_collection("b")  # still the target of an alias
        with pytest.raises(FP):
            engine.drop_collection("live")  # an alias, not a collection
    finally:
        engine.close()
    again = Engine(tmp_path / "data")
    try:
        assert again.aliases.resolve("live") == "b"
        assert again.aliases.rollback("live", lambda n: n in again._collections).collection == "a"
        assert again.count("live") == 1
        assert again.aliases.delete("live") and not again.aliases.delete("live")
    finally:
        again.close()


def test_alias_rpcs(server: tuple[Client, Engine]) -> None:
    db, _ = server
    db.create_collection("c1", dim=3)
    with pytest.raises(CollectionNotFound):
        db.set_alias("x", "nope")
    assert db.set_alias("x", "c1").collection == "c1"
    db.upsert("x", [5], np.ones((1, 3), np.float32))
    assert db.count("c1") == 1 and db.search("x", np.ones(3), k=1).hits[0].id == 5
    assert [(a.alias, a.collection) for a in db.list_aliases()] == [("x", "c1")]
    with pytest.raises(FailedPrecondition):
        db.rollback_alias("x")
    with pytest.raises(AlreadyExists):
        db.create_collection("x", dim=3)
    assert db.delete_alias("x")


def test_shadow_reindex_with_concurrent_queries_and_writes(
    server: tuple[Client, Engine], zoo: tuple
) -> None:
    db, _ = server
    models, px, py, gx, gy = zoo
    source(db, zoo)
    up = ShadowReindex(db, alias="items", shadow="items_v2", model="learnable", dim=9)
    up.prepare([f"p{i}" for i in range(len(py))], py, models["learnable"].embed(px))
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[tuple[int, bool, set[str]]] = []  # (thread, switched before sending, models)
    switched = threading.Event()
    queries = models["v1"].embed(px[:8])

    def query_loop(thread: int) -> None:
        while not stop.is_set():
            try:
                after = switched.is_set()
                # model "" = the active model of whichever collection the alias points at
                res = db.search_batch("items", queries, k=5)
                for r in res:
                    assert len(r.hits) == 5
                    seen.append((thread, after, {h.attributes["_model"] for h in r.hits}))
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
                return

    def write_loop() -> None:
        i = 0
        while not stop.is_set():
            try:
                row = gx[i % len(gx)][None, :]
                up.dual_write([f"w{i}"], models["v1"].embed(row), models["learnable"].embed(row))
                i += 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    threads = [threading.Thread(target=query_loop, args=(i,)) for i in range(2)]
    threads.append(threading.Thread(target=write_loop))
    for t in threads:
        t.start()
    try:
        order = backfill_order(models["v1"].embed(gx), gy)
        new = models["learnable"].embed(gx)
        batches = [
            (
                new[order[s : s + 10]],
                [int(v) for v in order[s : s + 10]],
                [{"label": int(gy[j])} for j in order[s : s + 10]],
            )
            for s in range(0, len(order), 10)
        ]
        assert up.backfill(batches, load_id="reindex-1") == len(gy)

        def wait_for(after: bool) -> None:  # progress of every query thread, not time
            for _ in range(6000):
                done = {t for t, a, _ in list(seen) if a == after}
                if done == {0, 1} or errors:
                    return
                threading.Event().wait(0.01)

        wait_for(after=False)
        alias = up.switch()
        switched.set()
        assert (alias.collection, alias.previous) == ("items_v2", "items_v1")
        wait_for(after=True)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    # atomic: every result came wholly from one side; the old side first, then the new
    assert all(len(models_) == 1 for _, _, models_ in seen)
    for thread in (0, 1):  # per thread: old side, then new side, never back
        sides = [next(iter(m)) for t, _, m in seen if t == thread]
        assert sides[0] == "v1" and sides[-1] == "learnable"
        assert set(sides[sides.index("learnable") :]) == {"learnable"}
    assert {next(iter(m)) for _, after, m in seen if after} == {"learnable"}
    # the shadow holds every item, plus the writes made during the re-index
    assert db.count("items_v2", filter='_model == "learnable"') >= len(gy)
    assert db.count("items", filter='_model == "learnable"') == db.count("items_v2")
    up.rollback()
    assert db.search("items", queries[0], k=1).hits[0].attributes["_model"] == "v1"


def test_backfill_order_puts_outliers_first() -> None:
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [1.0, 0.02]])
    y = np.array([0, 0, 1, 0])
    order = backfill_order(x, y)
    assert order[0] == 1 and sorted(order.tolist()) == [0, 1, 2, 3]


@pytest.mark.slow
def test_crash_during_reindex_leaves_old_model_serving(
    spawn_server: SpawnServer, tmp_path: Path, zoo: tuple
) -> None:
    models, px, py, gx, gy = zoo
    data_dir = tmp_path / "data"
    proc, port = spawn_server(data_dir)
    with Client(f"127.0.0.1:{port}", timeout=30) as db:
        source(db, zoo)
        up = ShadowReindex(db, alias="items", shadow="items_v2", model="v2", dim=9)
        up.prepare([f"p{i}" for i in range(len(py))], py, models["v2"].embed(px))
        new = models["v2"].embed(gx)

        def batches():  # the server is killed -9 after three durable chunks
            for n, s in enumerate(range(0, len(gy), 5)):
                if n == 4:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                yield new[s : s + 5], list(range(s, min(s + 5, len(gy))))

        with pytest.raises(SieveDBError):
            up.backfill(batches(), load_id="reindex-crash")
    _proc2, port2 = spawn_server(data_dir)
    with Client(f"127.0.0.1:{port2}", timeout=30) as db:
        # the alias still serves the old collection and model
        assert [(a.alias, a.collection) for a in db.list_aliases()] == [("items", "items_v1")]
        hit = db.search("items", models["v1"].embed(gx[:1])[0], k=1, model="v1").hits[0]
        assert hit.id == 0 and hit.attributes["_model"] == "v1"
        # resume the backfill from what the server recorded as durable, then switch
        up = ShadowReindex(db, alias="items", shadow="items_v2", model="v2", dim=9)
        start = up.resume_from("reindex-crash")
        assert 0 < start < len(gy)
        rest = [
            (new[s : s + 5], list(range(s, min(s + 5, len(gy))))) for s in range(start, len(gy), 5)
        ]
        up.backfill(rest, load_id="reindex-crash", start=start)
        up.switch()
        assert db.count("items") == len(gy)
        assert db.search("items", new[0], k=1, model="v2").hits[0].id == 0
