"""Many readers at once while a writer upserts and deletes: no errors, valid answers."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from sievedb_server.core.engine import Engine
from sievedb_server.core.types import (
    CollectionSpec,
    FieldSpec,
    FieldType,
    HnswParams,
    Metric,
    SearchParams,
)
from sievedb_server.filters.parser import parse


def test_searches_during_writes(tmp_path: Path) -> None:
    eng = Engine(tmp_path, sync=False, checkpoint_interval_s=0.2)  # checkpoints race too
    dim = 8
    eng.create_collection(
        CollectionSpec("c", dim, Metric.L2, HnswParams(full_scan_threshold=100),
                       (FieldSpec("g", FieldType.INTEGER),))
    )
    rng = np.random.default_rng(3)
    base = rng.normal(size=(3000, dim)).astype(np.float32)
    eng.upsert("c", list(range(1000)), base[:1000], [{"g": i % 7} for i in range(1000)])
    stop = threading.Event()
    errors: list[BaseException] = []
    flt = parse("g == 3")

    def reader(seed: int) -> None:
        r = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = r.normal(size=dim).astype(np.float32)
                hits = eng.search("c", q, SearchParams(k=10), flt).hits
                assert all(h.attributes["g"] == 3 for h in hits)
                assert len(hits) == 10
                plain = eng.search("c", q, SearchParams(k=5, exact=bool(seed % 2))).hits
                assert len(plain) == 5
        except BaseException as exc:  # reported below
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in readers:
        t.start()
    try:
        for start in range(1000, 3000, 250):
            ids = list(range(start, start + 250))
            eng.upsert("c", ids, base[start : start + 250], [{"g": i % 7} for i in ids])
            eng.delete("c", list(range(start - 1000, start - 900)))
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors, errors[0]
    assert eng.count("c") == 3000 - 800
    assert eng.count("c", flt) == sum(1 for i in range(800, 3000) if i % 7 == 3)
    eng.close()
