"""The collection's readers-writer lock: readers share, a writer is alone and is not starved,
and a waiting writer is woken when the last reader leaves (readers wake nobody otherwise)."""

from __future__ import annotations

import threading
import time

from sievedb_server.core.rwlock import RWLock


def test_readers_share_and_a_writer_waits_for_the_last_one() -> None:
    lock = RWLock()
    inside, order = threading.Barrier(3), []
    release = threading.Event()

    def reader(name: str) -> None:
        with lock.read():
            inside.wait(timeout=5)  # both readers hold the lock at once
            release.wait(timeout=5)
            order.append(name)

    readers = [threading.Thread(target=reader, args=(n,)) for n in ("r1", "r2")]
    for t in readers:
        t.start()
    inside.wait(timeout=5)

    def writer() -> None:
        with lock.write():
            order.append("w")

    w = threading.Thread(target=writer)
    w.start()
    deadline = time.monotonic() + 5
    while not lock._writers_waiting and time.monotonic() < deadline:
        time.sleep(0.001)
    assert lock._writers_waiting == 1 and order == []  # the writer waits for the readers
    release.set()
    for t in [*readers, w]:
        t.join(timeout=5)
        assert not t.is_alive()
    assert order[-1] == "w" and sorted(order[:2]) == ["r1", "r2"]


def test_a_waiting_writer_goes_before_new_readers() -> None:
    lock = RWLock()
    first_in, let_go, order = threading.Event(), threading.Event(), []

    def long_reader() -> None:
        with lock.read():
            first_in.set()
            let_go.wait(timeout=5)
        order.append("r1 out")

    def writer() -> None:
        with lock.write():
            order.append("w")

    def late_reader() -> None:
        with lock.read():
            order.append("r2")

    r1 = threading.Thread(target=long_reader)
    r1.start()
    first_in.wait(timeout=5)
    w = threading.Thread(target=writer)
    w.start()
    while not lock._writers_waiting:
        time.sleep(0.001)
    r2 = threading.Thread(target=late_reader)
    r2.start()
    time.sleep(0.05)
    assert "r2" not in order  # writer-preferring: the late reader queues behind the writer
    let_go.set()
    for t in (r1, w, r2):
        t.join(timeout=5)
        assert not t.is_alive()
    assert order.index("w") < order.index("r2")


def test_many_threads_never_overlap_a_writer() -> None:
    lock, state = RWLock(), {"readers": 0, "writer": False, "bad": 0}
    guard = threading.Lock()

    def read_loop() -> None:
        for _ in range(300):
            with lock.read():
                with guard:
                    state["readers"] += 1
                    state["bad"] += state["writer"]
                with guard:
                    state["readers"] -= 1

    def write_loop() -> None:
        for _ in range(100):
            with lock.write():
                with guard:
                    state["bad"] += state["readers"] > 0 or state["writer"]
                    state["writer"] = True
                with guard:
                    state["writer"] = False

    threads = [threading.Thread(target=read_loop) for _ in range(4)]
    threads += [threading.Thread(target=write_loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive(), "deadlock: a waiter was never woken"
    assert state["bad"] == 0
