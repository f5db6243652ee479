"""`sievedb bench` dispatches to the repository's benchmark workloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sievedb.cli", "bench", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd, check=False,
    )


def test_bench_outside_a_checkout_says_so(tmp_path: Path) -> None:
    out = _bench("blas", cwd=tmp_path)
    assert out.returncode == 1 and "no benchmarks/ folder" in out.stderr


def test_bench_runs_a_workload_and_records_the_command(tmp_path: Path) -> None:
    pytest.importorskip("threadpoolctl")
    # Work on a copy of the benchmarks package so the repository's results stay untouched.
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    for path in (ROOT / "benchmarks").glob("*.py"):
        (repo / "benchmarks" / path.name).write_text(path.read_text())
    out = _bench("blas", "--n", "20000", "--dim", "16", "--reps", "3", cwd=repo)
    assert out.returncode == 0, out.stderr
    doc = json.loads((repo / "benchmarks" / "results" / "blas_threads.json").read_text())
    assert doc["command"] == "sievedb bench blas --n 20000 --dim 16 --reps 3"
    assert {r["rows"] for r in doc["rows"]} == {1_000, 2_500, 10_000}
