"""FANNS filter families and query sets bucketed by *measured* selectivity.

A workload names a filter family and the fields it uses (so the same YAML works for any
dataset with an `AttributeTable`); the families are the arXiv FANNS paper's three plus the
combinations the issue asks for:

| family     | filter (`benchmarks.filterspec`)                                  | paper / track |
|------------|-------------------------------------------------------------------|---------------|
| `em`       | `["eq", field, v]`                                                 | EM (number_of_sub_categories) |
| `r`        | `["range", field, lo, hi]`                                         | R (update_date) |
| `emis`     | `["contains", field, v]`                                           | EMIS (main_categories) |
| `em_and_r` | `["and", eq, range]`                                               | C (EM ∧ R) |
| `two_tag`  | `["and", ["contains", f, a], ["contains", f, b]]`                  | YFCC filter track |
| `or`       | `["or", ["contains", f, a], ["contains", f, b]]`                   | C (OR) |
| `not`      | `["and", ["not", ["contains", f, c]], ["range", r_field, lo, hi]]` (pure `not` when the range would cover everything) | C (NOT) |

Values are drawn from the data (like the paper's query sets, independent of the query
vector); parameters are aimed at a bucket's target selectivity, the exact match count is
measured with `filterspec.mask`, and the filter is kept only if it lands in the bucket. Some
family × bucket pairs cannot be filled (a two-tag AND never matches 50 % of arXiv); the query
set records how many it got, and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.filtered_queries import Bucket
from benchmarks.filterspec import AttributeTable, Column, Filter, mask

__all__ = ["FAMILIES", "Bucket", "Query", "bucket_of", "build_query_set"]


@dataclass(frozen=True)
class Query:
    bucket: str
    filter: Filter
    count: int  # exact number of base rows passing the filter
    qrow: int  # row of the query-vector matrix


def bucket_of(count: int, n: int, buckets: list[Bucket]) -> str | None:
    """The first bucket whose selectivity/count range holds `count` (None if none does)."""
    return next((b.name for b in buckets if b.contains(count, n)), None)


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class _Field:
    """Value frequencies of one column, for aiming filters at a selectivity."""

    def __init__(self, col: Column, n: int) -> None:
        self.col, self.n = col, n
        if col.kind == "keyword_list":
            assert col.vocab is not None and col.indptr is not None
            self.codes: np.ndarray = np.arange(len(col.vocab))
            self.freq: np.ndarray = np.bincount(col.values, minlength=len(col.vocab)) / n
            self.row_of = np.repeat(np.arange(n), np.diff(col.indptr))
        elif col.kind in ("keyword", "int", "bool", "datetime"):
            self.codes, counts = np.unique(col.values, return_counts=True)
            self.freq = counts / n
        else:
            self.codes, self.freq = np.empty(0), np.empty(0)
        self._sorted: np.ndarray | None = None

    def value(self, code: Any) -> Any:
        if self.col.kind in ("keyword", "keyword_list"):
            assert self.col.vocab is not None
            return self.col.vocab[int(code)]
        if self.col.kind == "bool":
            return bool(code)
        return _py(code)

    def near(self, t: float, rng: np.random.Generator, spread: float = 2.5) -> int | None:
        """Index (into codes) of a value with frequency within `spread`× of t, random."""
        ok = np.flatnonzero((self.freq >= t / spread) & (self.freq <= t * spread))
        return int(rng.choice(ok)) if ok.size else None

    def at_least(self, t: float, rng: np.random.Generator) -> int | None:
        ok = np.flatnonzero(self.freq >= t)
        return int(rng.choice(ok)) if ok.size else None

    def window(self, frac: float, rng: np.random.Generator,
               subset: np.ndarray | None = None) -> tuple[Any, Any]:
        """[lo, hi] inclusive holding ≈ `frac` of the values (of `subset` rows if given)."""
        if subset is None:
            if self._sorted is None:
                self._sorted = np.sort(self.col.values)
            s = self._sorted
        else:
            s = np.sort(self.col.values[subset])
        m = s.size
        frac = min(max(frac, 1.0 / m), 1.0)
        start = rng.uniform(0.0, 1.0 - frac)
        return _py(s[min(m - 1, int(start * m))]), _py(s[min(m - 1, int((start + frac) * m))])


Maker = Callable[[dict[str, _Field], dict[str, Any], float, np.random.Generator],
                 Filter | None]


def _em(f: dict[str, _Field], wl: dict[str, Any], t: float, rng: np.random.Generator
        ) -> Filter | None:
    fld = f[wl["field"]]
    i = fld.near(t, rng)
    return None if i is None else ["eq", wl["field"], fld.value(fld.codes[i])]


def _emis(f: dict[str, _Field], wl: dict[str, Any], t: float, rng: np.random.Generator
          ) -> Filter | None:
    fld = f[wl["field"]]
    i = fld.near(t, rng)
    return None if i is None else ["contains", wl["field"], fld.value(fld.codes[i])]


def _r(f: dict[str, _Field], wl: dict[str, Any], t: float, rng: np.random.Generator
       ) -> Filter | None:
    lo, hi = f[wl["field"]].window(t, rng)
    return ["range", wl["field"], lo, hi]


def _em_and_r(f: dict[str, _Field], wl: dict[str, Any], t: float, rng: np.random.Generator
              ) -> Filter | None:
    em, r = f[wl["em_field"]], f[wl["r_field"]]
    i = em.at_least(t * 1.2, rng)
    if i is None:
        return None
    v = em.codes[i]
    rows = np.flatnonzero(em.col.values == v)
    lo, hi = r.window(t / em.freq[i], rng, subset=rows)
    return ["and", ["eq", wl["em_field"], em.value(v)], ["range", wl["r_field"], lo, hi]]


def _two_tag(f: dict[str, _Field], wl: dict[str, Any], t: float, rng: np.random.Generator
             ) -> Filter | None:
    fld = f[wl["field"]]
    i = fld.at_least(t * 1.2, rng)
    if i is None:
        return None
    col = fld.col
    has_a = np.zeros(fld.n, dtype=bool)
    has_a[fld.row_of[col.values == i]] = True
    co = np.bincount(col.values[has_a[fld.row_of]], minlength=fld.freq.size) / fld.n
    co[i] = 0.0
    ok = np.flatnonzero((co >= t / 2.5) & (co <= t * 2.5))
    if not ok.size:
        return None
    j = int(rng.choice(ok))
    return ["and", ["contains", wl["field"], fld.value(i)],
            ["contains", wl["field"], fld.value(j)]]


def _or(f: dict[str, _Field], wl: dict[str, Any], t: float, rng: np.random.Generator
        ) -> Filter | None:
    fld = f[wl["field"]]
    share = rng.uniform(0.3, 0.7)
    i = fld.near(t * share, rng, spread=2.0)
    j = fld.near(t * (1 - share), rng, spread=2.0)
    if i is None or j is None or i == j:
        return None
    return ["or", ["contains", wl["field"], fld.value(i)],
            ["contains", wl["field"], fld.value(j)]]


def _not(f: dict[str, _Field], wl: dict[str, Any], t: float, rng: np.random.Generator
         ) -> Filter | None:
    fld, r = f[wl["field"]], f[wl["r_field"]]
    i = int(rng.integers(fld.freq.size))
    keep = 1.0 - fld.freq[i]
    neg: Filter = ["not", ["contains", wl["field"], fld.value(i)]]
    if t >= keep * 0.9:
        return neg
    lo, hi = r.window(t / keep, rng)
    return ["and", neg, ["range", wl["r_field"], lo, hi]]


FAMILIES: dict[str, tuple[Maker, tuple[str, ...]]] = {
    "em": (_em, ("field",)),
    "r": (_r, ("field",)),
    "emis": (_emis, ("field",)),
    "em_and_r": (_em_and_r, ("em_field", "r_field")),
    "two_tag": (_two_tag, ("field",)),
    "or": (_or, ("field",)),
    "not": (_not, ("field", "r_field")),
}


def build_query_set(
    table: AttributeTable,
    n_query_vectors: int,
    workload: dict[str, Any],
    buckets: list[Bucket],
    per_bucket: int,
    *,
    seed: int,
    max_attempts: int = 300,
    give_up_after: int = 400,
) -> list[Query]:
    """Up to `per_bucket` queries per bucket for one workload (family + fields), seeded.

    The same filter may recur with another query vector (EM has one or two values per
    bucket, as in the paper's query files, where labels repeat).
    """
    family = workload["family"]
    if family not in FAMILIES:
        raise ValueError(f"unknown filter family {family!r}; known: {sorted(FAMILIES)}")
    make, needs = FAMILIES[family]
    missing = [workload.get(k) for k in needs if workload.get(k) not in table.columns]
    if missing:
        raise ValueError(f"workload {workload} names fields the dataset lacks: {missing}")
    n = len(table)
    fields = {workload[k]: _Field(table.columns[workload[k]], n) for k in needs}
    rng = np.random.default_rng([seed, sum(map(ord, family))])
    out: list[Query] = []
    for bucket in buckets:
        got = attempts = 0
        while got < per_bucket and attempts < per_bucket * max_attempts:
            if got == 0 and attempts >= give_up_after:
                break  # this family cannot reach this bucket on this data
            attempts += 1
            flt = make(fields, workload, bucket.target(rng, n), rng)
            if flt is None:
                continue
            count = int(np.count_nonzero(mask(flt, table)))
            if not bucket.contains(count, n):
                continue
            out.append(Query(bucket.name, flt, count, int(rng.integers(n_query_vectors))))
            got += 1
    return out
