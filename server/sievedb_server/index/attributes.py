"""Attribute indexes of one collection: posting bitmaps and sorted numeric indexes.

For every *indexed* schema field:

* keyword, keyword list, integer, boolean: a posting bitmap (pyroaring) per value, persisted
  in LMDB db `postings` under `field \\0 msgpack(value_key)`;
* integer, float, datetime: a range index; LMDB db `numeric` holds sortable keys
  `field \\0 f64-sortable \\0 label`, memory holds sorted numpy arrays (+ a small unsorted
  tail of recent changes, merged when it grows) so a range becomes a bitmap by binary search;
* per field, a `present` bitmap (non-null, non-empty value) and a `null` bitmap (explicit
  null), under the reserved value keys, for is_empty / is_null.

LMDB is the truth; memory mirrors it. Changes of a write batch are staged (`stage`), written
into the batch's LMDB transaction (`write`), and applied to memory after commit (`apply`),
all under the collection's write mutex, so the mirror never runs ahead of LMDB.
Numbers are indexed as float64 (exact for integers below 2**53 and µs datetimes).
"""

from __future__ import annotations

import array
import struct
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import lmdb
import msgpack
import numpy as np
from pyroaring import BitMap

from sievedb_server.core.types import FieldSpec, FieldType
from sievedb_server.filters.model import value_key
from sievedb_server.index import native_filter, native_scan
from sievedb_server.index.column_filter import ColumnCodes, ColumnRange

__all__ = ["AttributeIndex", "CodeColumn", "NumericIndex", "StagedChanges", "bitmap_of"]

POSTING_TYPES = {FieldType.KEYWORD, FieldType.KEYWORD_LIST, FieldType.INTEGER, FieldType.BOOLEAN}
NUMERIC_TYPES = {FieldType.INTEGER, FieldType.FLOAT, FieldType.DATETIME}
PRESENT = ("__present__", True)
NULL = ("__null__", True)
MERGE_MIN = 4096
# Single-valued posting types: each label is in at most one value's posting of the field.
CODED_TYPES = {FieldType.KEYWORD, FieldType.INTEGER, FieldType.BOOLEAN}


def _posting_key(fname: str, vkey: tuple[str, Any]) -> bytes:
    return fname.encode() + b"\x00" + msgpack.packb(list(vkey), datetime=True)


def _decode_posting_key(raw: bytes) -> tuple[str, tuple[str, Any]]:
    fname, _, rest = raw.partition(b"\x00")
    tag, value = msgpack.unpackb(rest, timestamp=3)
    return fname.decode(), (tag, value)


def _sortable(x: float) -> bytes:
    """Big-endian bytes whose lexicographic order is the numeric order of doubles."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", x))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return struct.pack(">Q", bits)


def _unsortable(raw: bytes) -> float:
    (bits,) = struct.unpack(">Q", raw)
    bits = bits ^ (1 << 63) if bits >> 63 else bits ^ 0xFFFFFFFFFFFFFFFF
    return float(struct.unpack(">d", struct.pack(">Q", bits))[0])


def _numeric_key(fname: str, value: float, label: int) -> bytes:
    return fname.encode() + b"\x00" + _sortable(value) + struct.pack(">Q", label)


def number_of(value: Any) -> float | None:
    """The float64 a numeric index stores for `value` (None if it is not a number).

    -0.0 becomes 0.0: the two compare equal (so an update between them stages no change) but
    their sortable LMDB keys differ, which left a stale key behind when such a point was
    updated and then deleted (found by the postings state machine).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) + 0.0
    if isinstance(value, datetime):
        return value.timestamp() * 1e6
    return None


def bitmap_of(labels: np.ndarray) -> BitMap:
    """A bitmap of integer labels (any order): serialized in C++ when the extension is built
    (`native_filter.roaring_of`; 1.3–1.5× pyroaring's buffer path at 20–1,000 labels, 9–21×
    at 10,000–50,000, results/range_index.md), else through that buffer path on sorted input."""
    if len(labels) == 0:
        return BitMap()
    built = native_filter.roaring_of(labels)
    if built is not None:
        return built
    return BitMap(array.array("I", np.sort(labels.astype(np.uint32)).tobytes()))


class NumericIndex:
    """Sorted (value, label) arrays plus an unsorted tail; labels in `stale` are ignored in base.

    The sorted base is cut into runs of WIDTH values, each with a prebuilt bitmap, so a wide
    range is a union of prebuilt bitmaps plus two partial runs built on the fly: constant-ish
    cost instead of building a bitmap of |range| labels per query. The partial runs dominate,
    so runs are short: 256 values rather than 1024 cut a 10–90 % range on 100k points from
    49–56 to 36–43 µs; 128 or 64 gain about 10 % more at most, and 64 nearly doubles a 0.1 %
    range
    (`python -m benchmarks.bench_range_index`, widths interleaved,
    benchmarks/results/range_index.md).

    `column` is the same data by label (NaN = no value), always current: it answers a range
    for a few candidate labels without building the range's bitmap (`among`), and estimates a
    range's size for free (`estimate`).
    """

    WIDTH = 256
    # Up to this many labels, a range's bitmap is built from its labels in one C++ call
    # (`bitmap_of`) rather than as a union of prebuilt runs: on 100k points, 18 against 25 µs
    # at 1,000 labels, 29 against 33 µs at 5,000, 33 against 32 µs at 10,000 (`python -m
    # benchmarks.bench_range_index`, "direct" and 256 rows, results/range_index.md).
    DIRECT_MAX = 5_000

    def __init__(self, values: np.ndarray, labels: np.ndarray) -> None:
        order = np.argsort(values, kind="stable")
        self.values, self.labels = values[order], labels[order]
        self.stale = BitMap()
        self.tail: dict[int, float] = {}
        size = int(labels.max()) + 1 if len(labels) else 0
        self.column = np.full(max(size, 1024), np.nan)
        self.column[labels] = values
        # Sorted position of each base label (-1: not in the base), so `count` can discount
        # the stale ones; and the sorted (stale positions, tail values) it needs, built on
        # first use after a change.
        self.position = np.full(size, -1, dtype=np.int32)
        self.position[self.labels] = np.arange(len(self.labels), dtype=np.int32)
        self._changed: tuple[np.ndarray, np.ndarray] | None = None
        self.width = self.WIDTH
        self.direct_max = self.DIRECT_MAX if native_filter.roaring_available() else 0
        # levels[0] are the runs' bitmaps; levels[l][j] is the union of runs
        # [j·2^l, (j+1)·2^l), so any span of whole runs is a union of O(log runs) bitmaps.
        level = [
            bitmap_of(self.labels[i : i + self.width])
            for i in range(0, len(self.labels), self.width)
        ]
        # Per run, its labels in label order with their sorted positions: a partial run is then
        # a mask over an already-sorted array (no sort per query when a range cuts a run).
        self.by_label: list[tuple[np.ndarray, np.ndarray]] = []
        for i in range(0, len(self.labels), self.width):
            run = self.labels[i : i + self.width].astype(np.uint32)
            order = np.argsort(run, kind="stable")
            self.by_label.append((run[order], (i + order).astype(np.int64)))
        self.levels = [level]
        while len(level) > 1:
            level = [BitMap.union(*level[j : j + 2]) for j in range(0, len(level), 2)]
            self.levels.append(level)

    def set(self, label: int, value: float | None) -> None:
        if label >= len(self.column):
            grown = np.full(max(label + 1, 2 * len(self.column)), np.nan)
            grown[: len(self.column)] = self.column
            self.column = grown
        self.column[label] = np.nan if value is None else value
        self.stale.add(label)
        self._changed = None
        if value is None:
            self.tail.pop(label, None)
        else:
            self.tail[label] = value
        if len(self.stale) > max(MERGE_MIN, len(self.values) // 20):
            self._merge()

    def _merge(self) -> None:
        keep = ~np.isin(self.labels, np.fromiter(self.stale, dtype=np.int64))
        tail_l = np.fromiter(self.tail.keys(), dtype=np.int64, count=len(self.tail))
        tail_v = np.fromiter(self.tail.values(), dtype=np.float64, count=len(self.tail))
        self.__init__(  # type: ignore[misc]
            np.concatenate([self.values[keep], tail_v]),
            np.concatenate([self.labels[keep], tail_l]),
        )

    def _positions(self, left: int, right: int) -> BitMap:
        """Labels at sorted positions [left, right)."""
        if right <= left:
            return BitMap()
        if right - left <= self.direct_max:  # serialized in C++ from the labels themselves
            return bitmap_of(self.labels[left:right])
        w = self.width
        first_full, last_full = -(-left // w), right // w
        if first_full >= last_full:
            return bitmap_of(self.labels[left:right])
        parts = self._runs(first_full, last_full)
        if left < first_full * w:
            parts.append(self._cut(left // w, left, first_full * w))
        if last_full * w < right:
            parts.append(self._cut(last_full, last_full * w, right))
        return BitMap.union(*parts)

    def _cut(self, run: int, left: int, right: int) -> BitMap:
        """Labels of one run at sorted positions [left, right)."""
        labels, positions = self.by_label[run]
        keep = labels[(positions >= left) & (positions < right)]
        return BitMap(array.array("I", keep.tobytes()))  # already in label order

    def _runs(self, lo: int, hi: int) -> list[BitMap]:
        """Precomputed bitmaps covering runs [lo, hi): aligned power-of-two blocks."""
        out: list[BitMap] = []
        level = 0
        while lo < hi:
            if lo & 1 and lo < hi:
                out.append(self.levels[level][lo])
                lo += 1
            if hi & 1 and lo < hi:
                hi -= 1
                out.append(self.levels[level][hi])
            lo //= 2
            hi //= 2
            level += 1
        return out

    def span(self, lo: float, lo_incl: bool, hi: float, hi_incl: bool) -> tuple[int, int]:
        """The sorted base's positions [left, right) of values in the range (the method form
        of searchsorted: a third of np.searchsorted's call overhead)."""
        values = self.values
        return (int(values.searchsorted(lo, "left" if lo_incl else "right")),
                int(values.searchsorted(hi, "right" if hi_incl else "left")))

    def estimate(self, lo: float, lo_incl: bool, hi: float, hi_incl: bool) -> int:
        """The number of values in the range, give or take the unsorted tail."""
        left, right = self.span(lo, lo_incl, hi, hi_incl)
        return max(right - left, 0) + len(self.tail)

    def count(self, lo: float, lo_incl: bool, hi: float, hi_incl: bool,
              span: tuple[int, int] | None = None) -> int:
        """The exact number of labels in the range, by binary searches: the base's, less its
        stale entries in the range, plus the tail's values in the range. `span`: the range's
        `span`, if the caller has it."""
        left, right = span or self.span(lo, lo_incl, hi, hi_incl)
        n = max(right - left, 0)
        if not self.stale:
            return n
        if self._changed is None:
            stale = np.frombuffer(self.stale.to_array(), dtype=np.uint32)
            stale = stale[stale < len(self.position)]
            positions = self.position[stale]
            tail = np.fromiter(self.tail.values(), dtype=np.float64, count=len(self.tail))
            self._changed = (np.sort(positions[positions >= 0]), np.sort(tail))
        positions, tail = self._changed
        if n:
            n -= int(positions.searchsorted(right) - positions.searchsorted(left))
        t_left = tail.searchsorted(lo, "left" if lo_incl else "right")
        t_right = tail.searchsorted(hi, "right" if hi_incl else "left")
        return n + max(int(t_right - t_left), 0)

    def among(self, candidates: BitMap, lo: float, lo_incl: bool, hi: float,
              hi_incl: bool) -> BitMap:
        """The candidates whose value lies in the range (read from `column`)."""
        labels = np.frombuffer(candidates.to_array(), dtype=np.uint32)
        return bitmap_of(self.among_labels(labels, lo, lo_incl, hi, hi_incl))

    def among_labels(self, labels: np.ndarray, lo: float, lo_incl: bool, hi: float,
                     hi_incl: bool) -> np.ndarray:
        """The sorted uint32 `labels` whose value lies in the range (read from `column`)."""
        if native_scan.AVAILABLE:  # one pass in C++, no temporary arrays
            return native_scan.column_among(self.column, labels, lo, lo_incl, hi, hi_incl)
        keep = ColumnRange(self.column, (lo, lo_incl, hi, hi_incl)).mask(labels.astype(np.int64))
        return labels[keep]

    def range(self, lo: float, lo_incl: bool, hi: float, hi_incl: bool,
              span: tuple[int, int] | None = None) -> BitMap:
        left, right = span or self.span(lo, lo_incl, hi, hi_incl)
        out = self._positions(left, right)
        if self.stale:
            out -= self.stale
            for label, v in self.tail.items():
                if (v > lo or (lo_incl and v == lo)) and (v < hi or (hi_incl and v == hi)):
                    out.add(label)
        return out

    def sorted_labels(self, lo: float, lo_incl: bool, hi: float, hi_incl: bool,
                      span: tuple[int, int] | None = None) -> np.ndarray:
        """The range's labels as a sorted uint32 array: what an exact scan reads, without the
        bitmap in between while the base has no stale entries."""
        if self.stale:
            return np.frombuffer(self.range(lo, lo_incl, hi, hi_incl, span).to_array(),
                                 dtype=np.uint32)
        left, right = span or self.span(lo, lo_incl, hi, hi_incl)
        return np.sort(self.labels[left:max(left, right)].astype(np.uint32))


class CodeColumn:
    """The value of a single-valued posting field by label, as a small integer code.

    `column[label]` is the code of the label's value (-1: none); `code_of` numbers the values
    in order of first appearance (codes are never reused). It mirrors the field's postings
    (built from them on load, kept in step by `AttributeIndex.apply`), so a filter that is one
    match on the field can be tested per candidate (`ColumnCodes`) without building its set.
    Should a label ever sit in two postings of the field (which schema validation rules out),
    the column marks itself `broken` and filters fall back to the postings.
    """

    def __init__(self) -> None:
        self.column = np.full(1024, -1, dtype=np.int32)
        self.code_of: dict[tuple[str, Any], int] = {}
        self.broken = False

    def add(self, vkey: tuple[str, Any], labels: np.ndarray) -> None:
        """`labels` (int64) now hold value `vkey` (after their old values were removed)."""
        if len(labels) == 0:
            return
        code = self.code_of.setdefault(vkey, len(self.code_of))
        top = int(labels.max())
        if top >= len(self.column):
            grown = np.full(max(top + 1, 2 * len(self.column)), -1, dtype=np.int32)
            grown[: len(self.column)] = self.column
            self.column = grown
        held = self.column[labels]
        if np.any((held >= 0) & (held != code)):
            self.broken = True
        self.column[labels] = code

    def remove(self, vkey: tuple[str, Any], labels: np.ndarray) -> None:
        code = self.code_of.get(vkey)
        if code is None or len(labels) == 0:
            return
        labels = labels[labels < len(self.column)]
        mine = labels[self.column[labels] == code]
        self.column[mine] = -1

    def filter_of(self, vkeys: Any) -> ColumnCodes | None:
        """The column test for "value in `vkeys`" (None if the column is broken)."""
        if self.broken:
            return None
        bits = 0  # a Python int as the bit set: one conversion instead of a numpy op per code
        for vk in vkeys:
            code = self.code_of.get(vk)
            if code is not None:
                bits |= 1 << code
        words = np.frombuffer(bits.to_bytes((bits.bit_length() + 63) // 64 * 8 or 8, "little"),
                              dtype="<u8")
        return ColumnCodes(self.column, words)


@dataclass
class StagedChanges:
    """Posting adds/removes and numeric updates of one write batch (not yet in memory)."""

    adds: dict[tuple[str, tuple[str, Any]], set[int]] = field(
        default_factory=lambda: defaultdict(set)
    )
    removes: dict[tuple[str, tuple[str, Any]], set[int]] = field(
        default_factory=lambda: defaultdict(set)
    )
    numeric: list[tuple[str, int, float | None, float | None]] = field(default_factory=list)
    new_postings: dict[tuple[str, tuple[str, Any]], BitMap] = field(default_factory=dict)


class AttributeIndex:
    def __init__(self, schema: Iterable[FieldSpec]) -> None:
        self.fields: dict[str, FieldSpec] = {f.name: f for f in schema if f.indexed}
        self.postings: dict[tuple[str, tuple[str, Any]], BitMap] = {}
        self.numeric: dict[str, NumericIndex] = {}
        self.codes: dict[str, CodeColumn] = {
            f.name: CodeColumn() for f in self.fields.values() if f.type in CODED_TYPES
        }

    # -- loading -------------------------------------------------------------------------

    def load(self, txn: lmdb.Transaction, postings_db: Any, numeric_db: Any) -> None:
        with txn.cursor(db=postings_db) as cur:
            for key, value in cur:
                fname, vkey = _decode_posting_key(bytes(key))
                bm = BitMap.deserialize(bytes(value))
                self.postings[(fname, vkey)] = bm
                if fname in self.codes and vkey not in (PRESENT, NULL):
                    self.codes[fname].add(vkey, np.asarray(bm.to_array(), dtype=np.int64))
        per_field: dict[str, tuple[list[float], list[int]]] = defaultdict(lambda: ([], []))
        with txn.cursor(db=numeric_db) as cur:
            for key in cur.iternext(keys=True, values=False):
                raw = bytes(key)
                fname_raw, _, rest = raw.partition(b"\x00")
                vals, labels = per_field[fname_raw.decode()]
                vals.append(_unsortable(rest[:8]))
                labels.append(struct.unpack(">Q", rest[8:16])[0])
        for fname, spec in self.fields.items():
            if spec.type in NUMERIC_TYPES:
                vals, labels = per_field.get(fname, ([], []))
                self.numeric[fname] = NumericIndex(
                    np.asarray(vals, dtype=np.float64), np.asarray(labels, dtype=np.int64)
                )

    # -- writes --------------------------------------------------------------------------

    def stage(
        self,
        staged: StagedChanges,
        label: int,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
    ) -> None:
        """Record the index changes of replacing `old` attributes by `new` for `label`."""
        old = old or {}
        new = new or {}
        for fname, spec in self.fields.items():
            before, after = self._keys(spec, old.get(fname, _MISSING)), self._keys(
                spec, new.get(fname, _MISSING)
            )
            for vk in before - after:
                staged.removes[(fname, vk)].add(label)
                staged.adds[(fname, vk)].discard(label)
            for vk in after - before:
                staged.adds[(fname, vk)].add(label)
                staged.removes[(fname, vk)].discard(label)
            if spec.type in NUMERIC_TYPES:
                ov, nv = number_of(old.get(fname)), number_of(new.get(fname))
                if ov != nv:
                    staged.numeric.append((fname, label, ov, nv))

    def _keys(self, spec: FieldSpec, value: Any) -> set[tuple[str, Any]]:
        if value is _MISSING:
            return set()
        if value is None:
            return {NULL}
        items = value if isinstance(value, list) else [value]
        keys: set[tuple[str, Any]] = set()
        if spec.type in POSTING_TYPES:
            keys = {value_key(v) for v in items if v is not None and not isinstance(v, list)}
        if items:
            keys.add(PRESENT)
        return keys

    def write(self, staged: StagedChanges, txn: lmdb.Transaction, postings_db: Any,
              numeric_db: Any) -> None:
        """Put the staged changes into the batch's write transaction."""
        for key in set(staged.adds) | set(staged.removes):
            bm = BitMap(self.postings.get(key, BitMap()))
            bm |= BitMap(staged.adds.get(key, ()))
            bm -= BitMap(staged.removes.get(key, ()))
            raw_key = _posting_key(*key)
            if bm:
                txn.put(raw_key, bm.serialize(), db=postings_db)
            else:
                txn.delete(raw_key, db=postings_db)
            staged.new_postings[key] = bm
        for fname, label, ov, nv in staged.numeric:
            if ov is not None:
                txn.delete(_numeric_key(fname, ov, label), db=numeric_db)
            if nv is not None:
                txn.put(_numeric_key(fname, nv, label), b"", db=numeric_db)

    def apply(self, staged: StagedChanges) -> None:
        """Mirror a committed batch in memory (caller holds the collection's index lock)."""
        for key, bm in staged.new_postings.items():
            if bm:
                self.postings[key] = bm
            else:
                self.postings.pop(key, None)
        for fname, label, _, nv in staged.numeric:
            self.numeric[fname].set(label, nv)
        # Code columns: removals first, so a label moving between values is never in two.
        for changes, step in ((staged.removes, CodeColumn.remove), (staged.adds, CodeColumn.add)):
            for (fname, vkey), labels in changes.items():
                column = self.codes.get(fname)
                if column is not None and labels and vkey not in (PRESENT, NULL):
                    step(column, vkey, np.fromiter(labels, dtype=np.int64, count=len(labels)))

    # -- reads ---------------------------------------------------------------------------

    def posting(self, fname: str, vkey: tuple[str, Any]) -> BitMap:
        return self.postings.get((fname, vkey), _EMPTY)

    def present(self, fname: str) -> BitMap:
        return self.posting(fname, PRESENT)

    def nulls(self, fname: str) -> BitMap:
        return self.posting(fname, NULL)


_MISSING: Any = object()
_EMPTY = BitMap()
