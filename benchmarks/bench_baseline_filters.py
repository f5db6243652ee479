"""What the baselines' numpy filters cost, written carefully and carelessly.

The like-for-like baselines of `bench_filtered` and the FANNS suite evaluate each query's
filter with numpy inside the timed call. How that numpy is written moves their per-query cost
by hundreds of microseconds, so this records the forms they use against the obvious
alternatives, on the filtered benchmark's dataset (synthetic arXiv, `correlated`, `--n` rows):

* equality on a keyword code column: `col == v` against `np.isin(col, [v])`;
* `in` over 5 codes: ORed `==` masks against `np.isin` and a lookup table indexed by the codes;
* a multi-valued field (a boolean row-per-point × value matrix): one value's column from a
  column-major copy against the C-ordered matrix (a strided read), alone (then
  `np.flatnonzero`, as a baseline does) and `& (authors <= t)`.

Best of `--repeat` timeit runs of `--number` calls, median over 20 random values per row.

    python -m benchmarks.bench_baseline_filters [--n 100000]
"""

from __future__ import annotations

import argparse
import timeit
from typing import Any

import numpy as np

from benchmarks.datasets.synthetic_arxiv import make_dataset
from benchmarks.harness import command_line, environment, markdown_table, write_results


def _best(fn: Any, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def _or_equal(col: np.ndarray, values: list[int]) -> np.ndarray:
    out = col == values[0]
    for v in values[1:]:
        out |= col == v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--number", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    attrs = make_dataset(args.n, 384, 10, variant="correlated", seed=0).attributes
    rng = np.random.default_rng(0)
    main_cat = attrs.main_category
    main64 = main_cat.astype(np.int64)  # the FANNS suite's keyword columns are int64 codes
    subs_c = attrs.sub_categories
    subs_f = np.asfortranarray(subs_c)
    authors = attrs.number_of_authors
    n_main, n_sub = int(main_cat.max()) + 1, subs_c.shape[1]

    cases: dict[str, dict[str, Any]] = {
        "eq, int16 codes": {
            "`col == v`": lambda v: main_cat == v[0],
            "`np.isin(col, [v])`": lambda v: np.isin(main_cat, v[:1]),
        },
        "eq, int64 codes": {
            "`col == v`": lambda v: main64 == v[0],
            "`np.isin(col, [v])`": lambda v: np.isin(main64, v[:1]),
        },
        "in 5 values, int16 codes": {
            "ORed `==`": lambda v: _or_equal(main_cat, v),
            "`np.isin`": lambda v: np.isin(main_cat, v),
            "lookup table": lambda v: _table(n_main, v)[main_cat],
        },
        "list contains → ids": {
            "column-major column": lambda v: np.flatnonzero(subs_f[:, v[0] % n_sub]),
            "C-ordered column": lambda v: np.flatnonzero(subs_c[:, v[0] % n_sub]),
        },
        "list contains and authors <= 3": {
            "column-major column": lambda v: subs_f[:, v[0] % n_sub] & (authors <= 3),
            "C-ordered column": lambda v: subs_c[:, v[0] % n_sub] & (authors <= 3),
        },
    }
    draws = [rng.choice(n_main, 5, replace=False).tolist() for _ in range(20)]
    rows = []
    for case, forms in cases.items():
        for form, fn in forms.items():
            us = [_best(lambda v=v: fn(v), args.number, args.repeat) for v in draws]
            rows.append({"filter": case, "numpy form": form, "µs": float(np.median(us))})
            print(rows[-1], flush=True)
    text = (f"{args.n:,} rows of the filtered benchmark's synthetic arXiv attributes; best of "
            f"{args.repeat}×{args.number} calls, median over 20 random values.\n\n"
            + markdown_table(rows, ["filter", "numpy form", "µs"]))
    write_results("baseline_filters", {"command": command_line(), "params": vars(args),
                                       "rows": rows, "environment": environment()}, text)


def _table(size: int, values: list[int]) -> np.ndarray:
    table = np.zeros(size, dtype=bool)
    table[values] = True
    return table


if __name__ == "__main__":
    main()
