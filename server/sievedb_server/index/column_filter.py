"""A filter as a test on one label-ordered column, evaluated per candidate instead of as a set.

Most filters people send are one condition on one field: `date in a range`, `category in
[...]`. Their allowed set can be huge (half the collection), and building it as a bitmap, then
as membership bits for the traversal, costs tens of microseconds per query before any vector
is touched. A graph search only tests the candidates it visits (hundreds), so for such a filter
it tests the field's column directly:

* `ColumnRange`: a numeric index's float64 column (value by label, NaN = none) and bounds;
* `ColumnCodes`: a single-valued posting field's int32 code column (the code of the label's
  value, -1 = none) and the bits of the allowed codes.

Each gives the C++ traversal filter its column (`native_filter.knn_query_column`), a Python
callback for when that is off, and a vectorised mask for a batch of labels (post-filter).
The caller holds the collection's read lock: writers change columns only under the write lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["Bounds", "ColumnCodes", "ColumnFilter", "ColumnRange"]

Bounds = tuple[float, bool, float, bool]  # lo, lo inclusive, hi, hi inclusive


class ColumnRange(NamedTuple):
    column: np.ndarray  # float64 by label, NaN = no value
    bounds: Bounds

    def mask(self, labels: np.ndarray) -> np.ndarray:
        """Which of `labels` (int64) have a value within the bounds."""
        lo, lo_incl, hi, hi_incl = self.bounds
        column = self.column
        inside = labels < len(column)
        v = column[np.where(inside, labels, 0)]
        keep = inside & ((v >= lo) if lo_incl else (v > lo))  # NaN (no value): False
        keep &= (v <= hi) if hi_incl else (v < hi)
        return keep

    def callback(self) -> Callable[[int], bool]:
        lo, lo_incl, hi, hi_incl = self.bounds
        column, size = self.column, len(self.column)

        def allowed(label: int) -> bool:
            if label >= size:
                return False
            v = column[label]
            return bool((v >= lo if lo_incl else v > lo) and (v <= hi if hi_incl else v < hi))

        return allowed


class ColumnCodes(NamedTuple):
    codes: np.ndarray  # int32 by label, -1 = no value
    allowed: np.ndarray  # uint64 words: bit `c & 63` of word `c >> 6` set for allowed code c

    def mask(self, labels: np.ndarray) -> np.ndarray:
        """Which of `labels` (int64) hold an allowed code."""
        codes, bits = self.codes, self.allowed
        inside = labels < len(codes)
        c = codes[np.where(inside, labels, 0)].astype(np.int64)
        known = inside & (c >= 0) & (c < len(bits) * 64)
        c = np.where(known, c, 0)
        return known & ((bits[c >> 6] >> (c & 63).astype(np.uint64)) & 1).astype(bool)

    def callback(self) -> Callable[[int], bool]:
        codes, bits = self.codes, self.allowed
        size, nbits = len(codes), len(self.allowed) * 64

        def allowed(label: int) -> bool:
            if label >= size:
                return False
            c = int(codes[label])
            return 0 <= c < nbits and bool((int(bits[c >> 6]) >> (c & 63)) & 1)

        return allowed


ColumnFilter = ColumnRange | ColumnCodes
