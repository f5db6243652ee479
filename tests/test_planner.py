"""The planner's choice on hand-checkable inputs (docs/PLANNER.md has the calibration)."""

from __future__ import annotations

import pytest
from sievedb_server.filters.planner import PlannerConfig, choose, fallback_after_short_postfilter

TOTAL, DIM, K = 100_000, 384, 10


def plan(allowed: int, ef: int, **kw: object) -> str:
    args: dict[str, object] = dict(
        allowed=allowed, total=TOTAL, k=K, ef=ef, dim=DIM, exact_requested=False,
        filtered=True, full_scan_threshold=5_000,
    )
    args.update(kw)
    return choose(**args).strategy  # type: ignore[arg-type]


def test_nothing_allowed_is_empty_and_small_sets_are_scanned() -> None:
    assert plan(0, 128) == "empty"
    assert plan(2_000, 128) == "exact"  # 2 000 × 384 floats ≤ exact_budget
    assert plan(50_000, 128, exact_requested=True) == "exact"
    assert plan(50_000, 128, total=4_000) == "exact"  # tiny collection


@pytest.mark.parametrize(
    ("allowed", "ef", "expected"),
    [
        # 50 %: fetch = 2·10/0.5 + 10 = 50; the traversal visits ~ef/0.5 = 2·ef.
        (50_000, 12, "hnsw_filtered"),    # 50 > 24
        (50_000, 32, "hnsw_postfilter"),  # 50 ≤ 64
        (50_000, 128, "hnsw_postfilter"),
        # 10 %: fetch = 210; the traversal visits ~10·ef.
        (10_000, 12, "hnsw_filtered"),    # 210 > 120
        (10_000, 32, "hnsw_postfilter"),  # 210 ≤ 320
        # 4 %: below postfilter_min (5 %), always the traversal.
        (4_000, 128, "hnsw_filtered"),
    ],
)
def test_post_filter_only_when_it_visits_fewer_points(allowed: int, ef: int, expected: str) -> None:
    assert plan(allowed, ef) == expected


def test_post_filter_fetch_is_capped() -> None:
    # 5 % at k = 100: fetch = 4 010 > postfilter_max_fetch (4 000).
    assert plan(5_000, 10_000, k=100) == "hnsw_filtered"
    assert plan(5_000, 10_000, k=100, config=PlannerConfig(postfilter_max_fetch=5_000)) == (
        "hnsw_postfilter"
    )


def test_a_short_post_filter_falls_back_by_size() -> None:
    cfg = PlannerConfig()
    assert fallback_after_short_postfilter(5_000, DIM, cfg) == "exact"  # 1.9 M floats
    assert fallback_after_short_postfilter(6_000, DIM, cfg) == "hnsw_filtered"
