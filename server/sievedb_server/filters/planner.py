"""The query planner: choose how to run one k-NN query given what the filter allows.

Inputs are known before any vector is touched: |allowed| (exact, from the bitmaps) or an
upper bound (when unindexed conditions must be re-checked), the live count, k, ef and dim.

| strategy          | when                                                                |
|-------------------|---------------------------------------------------------------------|
| `empty`           | nothing passes the filter                                           |
| `exact`           | asked for, tiny collection, or |allowed|·dim ≤ exact_budget (a scan of the allowed rows beats the graph) |
| `hnsw`            | no filter                                                           |
| `hnsw_postfilter` | selectivity ≥ postfilter_min: search unfiltered with over-fetch k/s, keep allowed hits, widen if short |
| `hnsw_filtered`   | otherwise: hnswlib traversal with a bitmap-membership filter         |

The constants are calibrated by `benchmarks/calibrate_planner.py` on this machine class and
recorded with their figures in `benchmarks/results/`; see docs/PLANNER.md.
Whatever the strategy, the executor guarantees min(k, |allowed|) hits: when a graph strategy
comes back short it falls back to the exact scan of the allowed set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_PLANNER", "PlanChoice", "PlannerConfig", "choose"]



@dataclass(frozen=True)
class PlannerConfig:
    """The cost model's thresholds (calibrated defaults; tests override them to force paths)."""

    # Exact scan of the allowed rows costs ~ |allowed|·dim multiply-adds plus the gather of the
    # rows; at or below this many floats it beats filtered HNSW.
    exact_budget: int = 3_000_000
    # At or above this selectivity post-filtering an unfiltered search wins (few rejects).
    postfilter_min: float = 0.3
    # Over-fetch factor on top of k / selectivity for post-filtering.
    overfetch: float = 1.5
    # Post-filter gives up (and falls through to filtered traversal) beyond this many candidates.
    postfilter_max_fetch: int = 2_000


DEFAULT_PLANNER = PlannerConfig()


@dataclass(frozen=True)
class PlanChoice:
    strategy: str
    fetch: int = 0  # candidates to request from the graph (post-filter)
    ef: int = 0


def choose(
    *,
    allowed: int,
    total: int,
    k: int,
    ef: int,
    dim: int,
    exact_requested: bool,
    filtered: bool,
    full_scan_threshold: int,
    config: PlannerConfig = DEFAULT_PLANNER,
) -> PlanChoice:
    if allowed == 0 or k == 0:
        return PlanChoice("empty")
    if exact_requested or total <= full_scan_threshold:
        return PlanChoice("exact")
    if not filtered:
        return PlanChoice("hnsw", ef=max(ef, k))
    if allowed * dim <= config.exact_budget:
        return PlanChoice("exact")
    selectivity = allowed / max(total, 1)
    if selectivity >= config.postfilter_min:
        fetch = min(total, math.ceil(k / selectivity * config.overfetch) + 10)
        if fetch <= config.postfilter_max_fetch:
            return PlanChoice("hnsw_postfilter", fetch=fetch, ef=max(ef, fetch))
    return PlanChoice("hnsw_filtered", ef=max(ef, k))
