"""The load test's tiny version: 4 clients for ~3 s against a real `sievedb serve` subprocess.

Checks the report is produced, every call succeeded, and the server's own accounting (the
Prometheus scrape and the access log) matches what the clients did.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import load_test


@pytest.mark.slow
def test_quick_load_test_writes_a_clean_report(tmp_path: Path) -> None:
    out = tmp_path / "results"
    status = load_test.main(
        ["--quick", "--out-dir", str(out), "--work-dir", str(tmp_path / "work")]
    )
    doc = json.loads((out / "load_test_quick.json").read_text())
    assert status == 0
    assert doc["overall"]["errors"] == 0 and doc["errors_by_status"] == {}
    assert doc["params"]["clients"] == 4
    assert doc["overall"]["calls"] > 0
    assert sum(r["calls"] for r in doc["per_op"]) == doc["overall"]["calls"]
    assert {r["op"] for r in doc["per_op"]} >= {"upsert", "search:unfiltered", "search:1%"}
    assert doc["command"] == (
        f"python -m benchmarks.load_test --quick --out-dir {out} --work-dir {tmp_path / 'work'}"
    )
    assert doc["environment"]["python"]

    cons = doc["consistency"]
    assert cons["client_searches"] == cons["server_searches"] > 0
    assert cons["client_upserts"] == cons["server_upserts"]
    assert cons["access_log_lines"] == cons["server_requests_total"]
    assert doc["server"]["exit_code"] == 0
    assert any(s["phase"] == "load" and s["rss_mb"] > 0 for s in doc["server"]["rss_samples"])
    assert doc["metrics"]["gauges"]["sievedb_collection_points"] >= doc["params"]["n"]

    md = (out / "load_test_quick.md").read_text()
    assert "errors: 0" in md and "load_test_quick_rss.png" in md
    assert (out / "load_test_quick_rss.png").stat().st_size > 0
    assert "sievedb_grpc_requests_total" in (out / "load_test_quick_metrics.txt").read_text()


def test_non_loopback_targets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="refusing to load-test"):
        load_test.main(["--quick", "--host", "0.0.0.0", "--out-dir", str(tmp_path)])
    assert not list(tmp_path.iterdir())
