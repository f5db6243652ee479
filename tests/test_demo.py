"""`sievedb demo` end to end on a small dataset: a real in-process server under tmp_path."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sievedb import cli
from sievedb.demo import DEFAULT_QUERIES, run_demo


def test_demo_runs_and_prints_the_table(tmp_path: Path) -> None:
    out, progress = io.StringIO(), io.StringIO()
    report = run_demo(
        tmp_path / "data",
        n=3000,
        dim=16,
        seed=1,
        queries=20,
        batch_size=700,
        out=out,
        progress=progress,
    )
    text = out.getvalue()

    assert "loaded 3,000 vectors" in text
    assert "3000/3000 vectors (100%)" in progress.getvalue()
    header = next(line for line in text.splitlines() if line.startswith("query"))
    for column in ("|allowed|", "strategy", "recall@10", "p50 ms", "p99 ms"):
        assert column in header
    expected = ["(no filter)", "(no filter, exact)"] + [expr for _, expr in DEFAULT_QUERIES]
    assert [r.filter or f"({r.label})" for r in report.rows] == expected
    for label in expected:
        assert any(line.startswith(label) for line in text.splitlines()), label
    assert "server stopped cleanly" in text

    by_label = {r.label: r for r in report.rows}
    assert by_label["no filter"].allowed == 3000
    assert by_label["no filter, exact"].strategies == {"exact": 20}
    for row in report.rows:
        assert sum(row.strategies.values()) == 20
        assert 0 <= row.allowed <= row.total == 3000
        assert row.recall is None or 0.0 <= row.recall <= 1.0
        assert 0 < row.p50_ms <= row.p99_ms
    # The server's exact scan agrees with numpy's brute force (ties aside).
    assert report.oracle_recall >= 0.99


def test_demo_recreates_the_collection(tmp_path: Path) -> None:
    for _ in range(2):
        report = run_demo(
            tmp_path / "data", n=500, dim=8, queries=5, out=io.StringIO(), progress=io.StringIO()
        )
        assert report.rows[0].total == 500  # not 1000: the second run dropped the first's data


def test_cli_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        [
            "demo",
            "--data-dir",
            str(tmp_path / "d"),
            "--n",
            "800",
            "--dim",
            "8",
            "--queries",
            "5",
            "--batch-size",
            "300",
        ]
    )
    assert status == 0
    captured = capsys.readouterr()
    assert "recall@10" in captured.out
    assert "loading:" in captured.err
