"""`sievedb verify`: finds damaged derived structures and `--repair` rebuilds them from LMDB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from sievedb_server.core.engine import Engine
from sievedb_server.core.types import CollectionSpec, FieldSpec, FieldType, Metric, SearchParams
from sievedb_server.core.verify import find_problems
from sievedb_server.filters.parser import parse


def _make(data_dir: Path) -> np.ndarray:
    eng = Engine(data_dir, checkpoint_interval_s=3600)
    eng.create_collection(CollectionSpec("c", 8, Metric.L2, schema=(
        FieldSpec("g", FieldType.INTEGER), FieldSpec("tag", FieldType.KEYWORD))))
    vecs = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    eng.upsert("c", list(range(300)), vecs, [{"g": i % 5, "tag": f"t{i % 3}"} for i in range(300)])
    eng.close()
    return vecs


def _verify(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sievedb.cli", "verify", "--data-dir", str(data_dir), *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_verify_clean_store(tmp_path: Path) -> None:
    _make(tmp_path)
    out = _verify(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "c: ok (300 points)" in out.stdout


def test_verify_finds_and_repairs_damaged_postings(tmp_path: Path) -> None:
    vecs = _make(tmp_path)
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    coll = eng.collection("c")
    # Damage the on-disk posting lists behind the engine's back (as a bug or bit rot would).
    with coll.store.env.begin(write=True) as txn:
        txn.drop(coll.store.db["postings"], delete=False)
    eng.close()

    out = _verify(tmp_path)
    assert out.returncode == 1 and "postings" in out.stdout
    out = _verify(tmp_path, "--repair")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok after repair" in out.stdout

    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    assert find_problems(eng.collection("c")) == []
    assert eng.count("c", parse('tag == "t1" and g >= 3')) == sum(
        1 for i in range(300) if i % 3 == 1 and i % 5 >= 3
    )
    assert eng.search("c", vecs[7], SearchParams(k=1)).hits[0].id == 7
    eng.close()


def test_repair_rebuilds_the_graph(tmp_path: Path) -> None:
    vecs = _make(tmp_path)
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    coll = eng.collection("c")
    from sievedb_server.core.verify import repair_collection

    coll.graph.init_empty(1024)  # the graph is lost (as if its file were damaged)
    coll.in_graph[:] = False
    assert [p.kind for p in find_problems(coll)] == ["graph"]
    assert repair_collection(coll)
    assert find_problems(coll) == []
    assert eng.search("c", vecs[3], SearchParams(k=1)).hits[0].id == 3
    eng.close()


def test_verify_finds_a_code_column_out_of_step(tmp_path: Path) -> None:
    """The code columns (single-valued fields' values by label) are checked against the
    postings they mirror; repairing reloads them."""
    from sievedb_server.core.verify import repair_collection

    _make(tmp_path)
    eng = Engine(tmp_path, checkpoint_interval_s=3600)
    try:
        coll = eng.collection("c")
        assert find_problems(coll) == []
        column = coll.attr_index.codes["tag"]
        column.column[5] = column.code_of[("s", "t1")]  # point 5 holds "t2"
        assert [p.message for p in find_problems(coll)] == [
            "code column 'tag' differs from a recomputation"
        ]
        assert repair_collection(coll)
        assert find_problems(coll) == []
        assert eng.count("c", parse('tag == "t2"')) == 100
    finally:
        eng.close()
