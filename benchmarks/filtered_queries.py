"""Filtered query sets bucketed by *measured* selectivity, and their exact ground truth.

A query is (query-vector row, filter expression, exact allowed mask). Filters come from
templates (equality, set membership, list-contains, integer and datetime ranges, and
conjunctions of those) whose parameters are aimed at a bucket's target selectivity; the exact
allowed count is then computed with numpy over the attribute columns and the filter is kept
only if it lands in the bucket. The expression text is what sievedb receives; the benchmark
checks that sievedb's `count(filter)` equals the numpy count for every query, so both sides
agree on the semantics before anything is timed.

Filter values are drawn independently of the query vector (as in the arXiv FANNS query
sets), so in the correlated variant the allowed set is often far from the query.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.datasets.synthetic_arxiv import (
    ARCHIVES,
    LICENSES,
    ArxivAttributes,
    date_of_day,
)
from benchmarks.harness import cache_key

__all__ = ["Bucket", "FilteredQuery", "build_queries", "ground_truth"]


@dataclass(frozen=True)
class Bucket:
    """Selectivity range [min_sel, max_sel] and/or match-count range [min_count, max_count]."""

    name: str
    min_sel: float = 0.0
    max_sel: float = 1.0
    min_count: int = 1
    max_count: int | None = None

    def contains(self, count: int, n: int) -> bool:
        sel = count / n
        if count < self.min_count or (self.max_count is not None and count > self.max_count):
            return False
        return self.min_sel <= sel <= self.max_sel

    def target(self, rng: np.random.Generator, n: int) -> float:
        """A target selectivity, log-uniform inside the bucket."""
        lo = max(self.min_sel, self.min_count / n)
        hi = min(self.max_sel, (self.max_count or n) / n)
        if hi <= lo:
            return lo
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


@dataclass
class FilteredQuery:
    bucket: str
    template: str
    expr: str
    query_row: int
    allowed: np.ndarray = field(repr=False)  # sorted int64 row ids of the base
    # Recomputes the boolean mask from the attribute columns: what a user of a plain vector
    # library pays per query to evaluate the filter (timed in the `+filter` baselines).
    mask_fn: Callable[[], np.ndarray] = field(repr=False, default=lambda: np.zeros(0, bool))

    @property
    def count(self) -> int:
        return int(self.allowed.size)


# (expression, zero-argument function recomputing the boolean mask from the columns)
Candidate = tuple[str, Callable[[], np.ndarray]] | None


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dt(day: int) -> str:
    return f'datetime("{date_of_day(day).strftime("%Y-%m-%dT%H:%M:%SZ")}")'


def _pick_near(freqs: np.ndarray, t: float, rng: np.random.Generator) -> int | None:
    """A value whose frequency is within 2.5x of t (random among them), else None."""
    ok = np.flatnonzero((freqs >= t / 2.5) & (freqs <= t * 2.5))
    return int(rng.choice(ok)) if ok.size else None


def _window(values: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[int, int]:
    """[lo, hi] (inclusive) holding about `frac` of `values`, at a random position."""
    s = np.sort(values)
    m = s.size
    frac = min(max(frac, 1.0 / m), 1.0)
    start = rng.uniform(0.0, 1.0 - frac)
    lo = s[min(m - 1, int(start * m))]
    hi = s[min(m - 1, int((start + frac) * m))]
    return int(lo), int(hi)


class _Templates:
    def __init__(self, a: ArxivAttributes) -> None:
        self.a = a
        n = len(a)
        self.n = n
        self.main_freq = np.bincount(a.main_category, minlength=len(ARCHIVES)) / n
        self.sub_freq = a.sub_categories.sum(axis=0) / n
        self.lic_freq = np.bincount(a.license, minlength=len(LICENSES)) / n
        # The baselines' filters are evaluated the way a careful numpy user would: a column of
        # the multi-valued field is contiguous (a C-ordered row-per-point matrix would make
        # each column read a 240-byte strided gather) and `in [...]` ORs equality masks (5x
        # faster than a lookup table indexed by the codes and 26x faster than np.isin for 5
        # codes on 100k rows: `python -m benchmarks.bench_baseline_filters`).
        self.sub_cols = np.asfortranarray(a.sub_categories)

    def all(self) -> list[tuple[str, Callable[[np.random.Generator, float], Candidate]]]:
        return [
            ("eq_main", self.eq_main),
            ("in_main", self.in_main),
            ("contains_sub", self.contains_sub),
            ("range_authors", self.range_authors),
            ("range_date", self.range_date),
            ("eq_license", self.eq_license),
            ("main_and_date", self.main_and_date),
            ("sub_and_authors", self.sub_and_authors),
            ("comment_main_license", self.comment_main_license),
            ("not_license_and_comment", self.not_license_and_comment),
        ]

    def eq_main(self, rng: np.random.Generator, t: float) -> Candidate:
        c = _pick_near(self.main_freq, t, rng)
        if c is None:
            return None
        a = self.a
        return f"main_category == {_q(ARCHIVES[c])}", lambda: a.main_category == c

    def in_main(self, rng: np.random.Generator, t: float) -> Candidate:
        goal = t * rng.uniform(0.7, 1.3)
        chosen, total = [], 0.0
        for c in rng.permutation(len(ARCHIVES)):
            if total + self.main_freq[c] > goal * 1.5:
                continue
            chosen.append(int(c))
            total += self.main_freq[c]
            if total >= goal or len(chosen) >= 8:
                break
        if len(chosen) < 2:
            return None
        names = ", ".join(_q(ARCHIVES[c]) for c in chosen)
        a = self.a

        def mask() -> np.ndarray:
            out = a.main_category == chosen[0]
            for c in chosen[1:]:
                out |= a.main_category == c
            return out

        return f"main_category in [{names}]", mask

    def contains_sub(self, rng: np.random.Generator, t: float) -> Candidate:
        s = _pick_near(self.sub_freq, t, rng)
        if s is None:
            return None
        a, cols = self.a, self.sub_cols
        return f"{_q(a.sub_names[s])} in sub_categories", lambda: cols[:, s]

    def eq_license(self, rng: np.random.Generator, t: float) -> Candidate:
        lic = _pick_near(self.lic_freq, t, rng)
        if lic is None:
            return None
        a = self.a
        return f"license == {_q(LICENSES[lic])}", lambda: a.license == lic

    def range_authors(self, rng: np.random.Generator, t: float) -> Candidate:
        x = self.a.number_of_authors
        lo, hi = _window(x, t, rng)
        if lo == hi:
            return f"number_of_authors == {lo}", lambda: x == lo
        return f"number_of_authors between {lo} and {hi}", lambda: (x >= lo) & (x <= hi)

    def range_date(self, rng: np.random.Generator, t: float) -> Candidate:
        d = self.a.update_day
        lo, hi = _window(d, t, rng)
        return f"update_date between {_dt(lo)} and {_dt(hi)}", lambda: (d >= lo) & (d <= hi)

    def main_and_date(self, rng: np.random.Generator, t: float) -> Candidate:
        ok = np.flatnonzero(self.main_freq >= t * 1.2)
        if not ok.size:
            return None
        c = int(rng.choice(ok))
        a = self.a
        in_c = a.main_category == c
        days = np.sort(self.a.update_day[in_c])
        frac = t / self.main_freq[c]
        since = int(days[min(days.size - 1, int((1.0 - frac) * days.size))])
        return (
            f"main_category == {_q(ARCHIVES[c])} and update_date >= {_dt(since)}",
            lambda: (a.main_category == c) & (a.update_day >= since),
        )

    def sub_and_authors(self, rng: np.random.Generator, t: float) -> Candidate:
        ok = np.flatnonzero(self.sub_freq >= t * 1.2)
        if not ok.size:
            return None
        s = int(rng.choice(ok))
        a = self.a
        cols = self.sub_cols
        has = cols[:, s]
        frac = t / self.sub_freq[s]
        x = self.a.number_of_authors
        authors = np.sort(x[has])
        top = int(authors[min(authors.size - 1, int(frac * authors.size))])
        return (
            f"{_q(a.sub_names[s])} in sub_categories and number_of_authors <= {top}",
            lambda: cols[:, s] & (x <= top),
        )

    def comment_main_license(self, rng: np.random.Generator, t: float) -> Candidate:
        flag = bool(rng.random() < 0.7)
        c = int(rng.integers(len(ARCHIVES)))
        lic = int(rng.integers(len(LICENSES)))
        a = self.a

        def mask() -> np.ndarray:
            return (a.has_comment == flag) & (a.main_category == c) & (a.license == lic)

        expr = (
            f"has_comment == {str(flag).lower()} and main_category == {_q(ARCHIVES[c])} "
            f"and license == {_q(LICENSES[lic])}"
        )
        return expr, mask

    def not_license_and_comment(self, rng: np.random.Generator, t: float) -> Candidate:
        lic = int(rng.integers(len(LICENSES)))
        flag = bool(rng.random() < 0.5)
        a = self.a

        def mask() -> np.ndarray:
            return (a.license != lic) & (a.has_comment == flag)

        return (
            f"license != {_q(LICENSES[lic])} and has_comment == {str(flag).lower()}",
            mask,
        )


def build_queries(
    attrs: ArxivAttributes,
    n_query_vectors: int,
    buckets: list[Bucket],
    per_bucket: int,
    *,
    seed: int,
    max_attempts_per_query: int = 400,
) -> list[FilteredQuery]:
    """`per_bucket` distinct filters per bucket (fewer if the bucket cannot be filled)."""
    rng = np.random.default_rng([seed, 42])
    templates = _Templates(attrs).all()
    n = len(attrs)
    out: list[FilteredQuery] = []
    for bucket in buckets:
        seen: set[str] = set()
        got, attempts, turn = 0, 0, 0
        while got < per_bucket and attempts < per_bucket * max_attempts_per_query:
            attempts += 1
            name, make = templates[turn % len(templates)]
            turn += 1
            cand = make(rng, bucket.target(rng, n))
            if cand is None:
                continue
            expr, mask_fn = cand
            mask = mask_fn()
            count = int(np.count_nonzero(mask))
            if not bucket.contains(count, n):
                continue
            # The same filter may recur with another query vector, but not too often.
            if expr in seen and rng.random() < 0.8:
                continue
            seen.add(expr)
            row = int(rng.integers(n_query_vectors))
            out.append(
                FilteredQuery(bucket.name, name, expr, row, np.flatnonzero(mask), mask_fn)
            )
            got += 1
    return out


def ground_truth(
    base: np.ndarray,
    queries: np.ndarray,
    fq: list[FilteredQuery],
    k: int,
    *,
    cache_dir: Path | None,
    key_parts: tuple[object, ...],
) -> np.ndarray:
    """Exact top-k (by inner product on normalised vectors) among each query's allowed rows.

    Returns int64 (len(fq), k), padded with -1 when fewer than k rows are allowed. Cached as
    .npy under `cache_dir` keyed by the dataset parameters and the query set.
    """
    key = cache_key("gt", k, *key_parts, [(q.expr, q.query_row) for q in fq])
    path = cache_dir / "gt" / f"{key}.npy" if cache_dir is not None else None
    if path is not None and path.exists():
        return np.load(path)
    out = np.full((len(fq), k), -1, dtype=np.int64)
    for i, q in enumerate(fq):
        out[i, : min(k, q.count)] = exact_topk(base, queries[q.query_row], q.allowed, k)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


def exact_topk(base: np.ndarray, q: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Row ids of the k highest inner products among `allowed` (chunked, best first)."""
    best_ids = np.empty(0, dtype=np.int64)
    best_scores = np.empty(0, dtype=np.float32)
    chunk = 32_768
    for start in range(0, allowed.size, chunk):
        ids = allowed[start : start + chunk]
        scores = base[ids] @ q
        ids = np.concatenate([best_ids, ids])
        scores = np.concatenate([best_scores, scores])
        if scores.size > k:
            part = np.argpartition(-scores, k - 1)[:k]
            ids, scores = ids[part], scores[part]
        best_ids, best_scores = ids, scores
    order = np.argsort(-best_scores, kind="stable")
    return best_ids[order][:k]
