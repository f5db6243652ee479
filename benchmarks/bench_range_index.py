"""The numeric range index: run width, and checking candidates against the label column.

Two measurements behind constants in `server/sievedb_server/index/attributes.py` and
`filters/bitmaps.py`, on `--n` points with integer values (uniform in 0..6000, labels in
random order, as an update-date field):

* `width`: a range → bitmap through prebuilt run bitmaps plus two partial runs cut on the fly,
  for run widths from 1024 down to 64 values, and built straight from the range's labels in C++
  ("direct", `NumericIndex.DIRECT_MAX`), at range sizes 90 % … 0.1 %.
* `among`: a conjunction `<posting> and <range>`: intersecting with the range's bitmap against
  reading the candidates' values from the label-ordered column (`NumericIndex.among`), for
  candidate counts 100 … 10,000 and range sizes 90 / 50 / 10 %.
* `labels → bitmap`: `bitmap_of` in C++ against pyroaring's buffer path.

Times are the best of `--repeat` timeit runs of `--number` calls, median over 30 random
ranges / candidate sets per cell; the widths are timed interleaved on the same ranges.

    python -m benchmarks.bench_range_index [--n 100000]
"""

from __future__ import annotations

import argparse
import array
import timeit
from typing import Any

import numpy as np
from pyroaring import BitMap
from sievedb_server.index import native_filter
from sievedb_server.index.attributes import NumericIndex

from benchmarks.harness import command_line, environment, markdown_table, write_results

SPAN = 6000


def _best(fn: Any, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def _index(
    values: np.ndarray, labels: np.ndarray, width: int, direct_max: int | None = None
) -> NumericIndex:
    """An index with run width `width`; `direct_max` (default: the module's) caps the ranges
    built straight from their labels in C++ (0: always through runs)."""
    saved = NumericIndex.WIDTH, NumericIndex.DIRECT_MAX
    NumericIndex.WIDTH = width
    if direct_max is not None:
        NumericIndex.DIRECT_MAX = direct_max
    try:
        return NumericIndex(values, labels)
    finally:
        NumericIndex.WIDTH, NumericIndex.DIRECT_MAX = saved


def _labels_to_bitmap(rng: np.random.Generator, n: int, number: int, repeat: int
                      ) -> list[dict[str, Any]]:
    """A label array (random order) → BitMap: C++ serialization against pyroaring's buffer
    path on the sorted labels (what `bitmap_of` did before)."""
    rows = []
    for m in (20, 100, 1000, 10_000, 50_000):
        t_native, t_buffer = [], []
        for _ in range(10):
            labels = rng.choice(n, m, replace=False).astype(np.int64)
            t_native.append(_best(lambda a=labels: native_filter.roaring_of(a), number, repeat))
            t_buffer.append(_best(
                lambda a=labels: BitMap(array.array("I", np.sort(a.astype(np.uint32)).tobytes())),
                number, repeat))
        rows.append({"labels": m, "C++ µs": float(np.median(t_native)),
                     "pyroaring µs": float(np.median(t_buffer)),
                     "speedup": float(np.median(t_buffer) / np.median(t_native))})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--number", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    fracs = (0.9, 0.5, 0.1, 0.05, 0.02, 0.01, 0.001)

    # Every width answers the same ranges, interleaved (rotating order per range), so machine
    # noise lands on all widths alike.
    # Widths build every range through runs; "direct" builds it from its labels in C++.
    widths = (1024, 512, 256, 128, 64, "direct")
    values = rng.integers(0, SPAN, args.n).astype(np.float64)
    labels = rng.permutation(args.n).astype(np.int64)
    indexes = [
        _index(values, labels, NumericIndex.WIDTH, args.n) if w == "direct"
        else _index(values, labels, int(w), 0)
        for w in widths
    ]
    times: dict[tuple[Any, float], list[float]] = {(w, f): [] for w in widths for f in fracs}
    for frac in fracs:
        for r in range(30):
            lo = float(rng.integers(0, int(SPAN * (1 - frac)) + 1))
            hi = lo + SPAN * frac
            order = list(range(len(widths)))
            order = order[r % len(order):] + order[: r % len(order)]
            for i in order:
                ni = indexes[i]
                times[(widths[i], frac)].append(
                    _best(lambda ni=ni: ni.range(lo, True, hi, False), args.number, args.repeat))
    width_rows = []
    for w, ni in zip(widths, indexes):
        row: dict[str, Any] = {"run width": w}
        for frac in fracs:
            row[f"{frac:.1%} µs"] = float(np.median(times[(w, frac)]))
        width_rows.append(row)
        print(row, flush=True)

    ni = _index(values, labels, NumericIndex.WIDTH)
    among_rows = []
    for frac in (0.9, 0.5, 0.1, 0.01, 0.001):
        lo = SPAN * (1 - frac)
        for m in (100, 500, 1000, 2000, 3000, 5000, 10_000, 20_000):
            t_among, t_and = [], []
            for _ in range(30):
                cand = BitMap(np.sort(rng.choice(args.n, m, replace=False)).astype(np.uint32))
                t_among.append(_best(lambda c=cand: ni.among(c, lo, True, np.inf, True),
                                     args.number, args.repeat))
                t_and.append(_best(lambda c=cand: c & ni.range(lo, True, np.inf, True),
                                   args.number, args.repeat))
            among_rows.append({"range": f"{frac:.1%}", "candidates": m,
                               "column µs": float(np.median(t_among)),
                               "bitmap & µs": float(np.median(t_and)),
                               "ratio": float(np.median(t_and) / np.median(t_among))})
            print(among_rows[-1], flush=True)
    convert_rows = _labels_to_bitmap(rng, args.n, args.number, args.repeat)

    text = (
        f"{args.n:,} points, values uniform in 0..{SPAN}, labels in random order; best of "
        f"{args.repeat}×{args.number} calls, median over 30 random ranges / candidate sets.\n\n"
        "## Range → bitmap by run width\n\n"
        + markdown_table(width_rows, list(width_rows[0]))
        + "\n\n## `<candidates> and <range>`: label column against range bitmap\n\n"
        "`ratio` above 1: reading the candidates' values from the column is faster.\n\n"
        + markdown_table(among_rows, list(among_rows[0]))
        + "\n\n## Label array → bitmap\n\n`bitmap_of` in C++ (a roaring serialization, "
        "deserialized) against pyroaring's buffer path on the sorted labels.\n\n"
        + markdown_table(convert_rows, list(convert_rows[0]))
    )
    write_results("range_index", {"command": command_line(), "params": vars(args),
                                  "width": width_rows, "among": among_rows,
                                  "labels_to_bitmap": convert_rows,
                                  "environment": environment()}, text)


if __name__ == "__main__":
    main()
