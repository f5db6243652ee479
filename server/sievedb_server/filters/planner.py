"""The query planner: choose how to run one k-NN query given what the filter allows.

Inputs are known before any vector is touched: |allowed| (exact, from the bitmaps) or an
upper bound (when unindexed conditions must be re-checked), the live count, k, ef and dim.

| strategy          | when                                                                |
|-------------------|---------------------------------------------------------------------|
| `empty`           | nothing passes the filter                                           |
| `exact`           | asked for, tiny collection, or |allowed|·dim ≤ exact_budget (a scan of the allowed rows beats the graph) |
| `hnsw`            | no filter                                                           |
| `hnsw_postfilter` | selectivity ≥ postfilter_min: search unfiltered with over-fetch k/s, keep allowed hits; if short (anti-correlated filter) scan exactly, or for huge sets use filtered traversal |
| `hnsw_filtered`   | otherwise: hnswlib traversal with a bitmap-membership filter (a Python callback per visited point: the last resort) |

The constants are calibrated by `benchmarks/calibrate_planner.py` on this machine class and
recorded with their figures in `benchmarks/results/`; see docs/PLANNER.md.
Whatever the strategy, the executor guarantees min(k, |allowed|) hits: when a graph strategy
comes back short it falls back to the exact scan of the allowed set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "DEFAULT_PLANNER",
    "PlanChoice",
    "PlannerConfig",
    "choose",
    "fallback_after_short_postfilter",
]



@dataclass(frozen=True)
class PlannerConfig:
    """The cost model's thresholds (calibrated defaults; tests override them to force paths)."""

    # Exact scan of the allowed rows costs ~ |allowed|·dim multiply-adds plus the gather of
    # the rows; at or below this many floats it beats every graph strategy.
    exact_budget: int = 1_000_000
    # At or above this selectivity, post-filtering an unfiltered search is tried first.
    postfilter_min: float = 0.05
    # Candidates fetched = k / selectivity · overfetch (+10).
    overfetch: float = 2.0
    # Graph ef for post-filtering = max(ef, factor · fetch): the top `fetch` must be accurate.
    postfilter_ef_factor: float = 1.0
    # Post-filter never asks the graph for more candidates than this.
    postfilter_max_fetch: int = 4_000
    # Post-filter only when it should visit fewer points than the filtered traversal: the
    # traversal must collect ef allowed candidates, so it visits about ef / selectivity points,
    # while the post-filter visits about `fetch`. Post-filter when
    # fetch <= postfilter_cost_ratio · ef / selectivity (A/B in docs/PLANNER.md).
    postfilter_cost_ratio: float = 1.0
    # When post-filtering comes back short (filter anti-correlated with the query), scan the
    # allowed rows exactly if there are at most this many floats; else filtered traversal.
    fallback_exact_budget: int = 2_000_000
    # A filter that is one condition on one indexed field is tested per candidate on the
    # field's column by the graph strategies, instead of being built as a set (docs/PLANNER.md,
    # "Filters tested on a column"). Off: always build the set (for A/B runs).
    column_tests: bool = True


DEFAULT_PLANNER = PlannerConfig()


class PlanChoice(NamedTuple):
    """(a tuple: every query makes one, and a frozen dataclass costs a setattr per field)"""

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
        traversal_visits = config.postfilter_cost_ratio * ef / selectivity
        if fetch <= min(config.postfilter_max_fetch, traversal_visits):
            pf_ef = max(ef, math.ceil(config.postfilter_ef_factor * fetch))
            return PlanChoice("hnsw_postfilter", fetch=fetch, ef=pf_ef)
    return PlanChoice("hnsw_filtered", ef=max(ef, k))


def fallback_after_short_postfilter(allowed: int, dim: int, config: PlannerConfig) -> str:
    """What to run when post-filtering found fewer than k allowed hits."""
    return "exact" if allowed * dim <= config.fallback_exact_budget else "hnsw_filtered"
