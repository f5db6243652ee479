"""The crash campaign in miniature: a few `kill -9` points on tiny data, every check enforced.

Runs the same code as `python -m benchmarks.crash_campaign` (which commits its 100+ point
report under benchmarks/results/), with the moments that exercise the most machinery: a kill
in the middle of a bulk-load stream, one while the background indexer lags, and one right
after an acknowledgement.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.crash_campaign import CampaignConfig, run_campaign
from benchmarks.crash_journal import Op, WriterJournal, compare, state_of

pytestmark = pytest.mark.slow


def test_a_few_kill_points_lose_nothing(tmp_path: Path) -> None:
    cfg = CampaignConfig(
        kill_points=3, seed=5, writers=2, target_points=300, max_batch=16,
        bulk_rows=(300, 700), bulk_chunk=(60, 120), round_s=(0.2, 0.6),
        search_probes=5, moments=("mid-bulk-load", "mid-indexing", "after-ack"),
    )
    doc = run_campaign(cfg, tmp_path)
    totals = doc["totals"]
    details = [p for r in doc["rounds"] for p in r["lost"] + r["problems"]]
    assert totals["kill_points"] == 3
    assert totals["acknowledged_points_checked"] > 0
    assert totals["lost"] == 0, details
    assert totals["inconsistencies"] == 0, details
    assert doc["final_verify"]["exit_code"] == 0, doc["final_verify"]["output"]
    assert sorted(r["moment"] for r in doc["rounds"]) == sorted(cfg.moments)


def _journal_with_inflight_bulk() -> tuple[WriterJournal, list]:
    j = WriterJournal(0)
    a, b, c, d = (state_of([float(i)], {"ver": i}) for i in range(4))
    first = Op("upsert", [{"p1": a}])
    j.begin(first)
    j.ack_chunk(first)
    op = Op("bulk", [{"p2": b}, {"p3": c, "p1": d}], load_id="x", chunk_rows=[1, 3])
    j.begin(op)
    return j, [a, b, c, d]


def test_journal_settles_in_order_chunks_and_flags_the_rest() -> None:
    j, (a, b, c, d) = _journal_with_inflight_bulk()
    assert j.resolve({"p1": a, "p2": b}) == (1, [])  # first chunk landed, second did not
    checked, lost, wrong = compare([j], {"p1": a, "p2": b})
    assert (checked, lost, wrong) == (2, [], [])

    j, (a, b, c, d) = _journal_with_inflight_bulk()
    landed, problems = j.resolve({"p1": d, "p3": c})  # second landed without the first
    assert landed == 1 and "in order" in problems[0]

    j, (a, b, c, _) = _journal_with_inflight_bulk()
    landed, problems = j.resolve({"p1": a, "p2": b, "p3": c})  # second chunk half applied
    assert "partly applied" in problems[0]


def test_compare_counts_lost_and_phantom_points() -> None:
    j, (a, b, c, _) = _journal_with_inflight_bulk()
    j.resolve({"p1": a})
    _, lost, wrong = compare([j], {"p2": b, "zz": c})
    assert lost == ["p1: acknowledged but missing"]
    assert sorted(wrong) == [
        "p2: deleted (acknowledged) or never landed, yet present",
        "zz: never written, yet present",
    ]
