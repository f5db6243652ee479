"""The benchmark's neutral filter language and attribute table: one contract for every system.

Workloads (YAML), ground truth and every system adapter speak this small language; each
adapter translates it into its own (sievedb's expression text, a Chroma `where`, a LanceDB SQL
predicate, a Milvus boolean expression, ...). The numpy evaluator `mask` defines the semantics;
ground truth is computed from it, and every adapter's translation is checked against it.

A filter is JSON-shaped (lists and scalars only, so YAML and cache keys can hold it):

    ["eq", field, value]          scalar field == value (keyword, int, bool)
    ["in", field, [v1, v2, ...]]  scalar field is one of the values
    ["contains", field, value]    list field (keyword_list) contains value
    ["range", field, lo, hi]      lo <= field <= hi, inclusive; int/float/datetime fields;
                                  either bound may be null (open). Datetimes are int epoch
                                  seconds (UTC) everywhere in the benchmark.
    ["and", f1, f2, ...]   ["or", f1, f2, ...]   ["not", f]

Attribute kinds: "keyword", "keyword_list", "int", "float", "bool", "datetime". Every row has
every field (the generators and loaders fill all of them), so no missing-value semantics are
needed here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

__all__ = [
    "KINDS",
    "AttributeTable",
    "Column",
    "Filter",
    "fields_of",
    "mask",
    "to_sievedb_expr",
    "validate",
]

KINDS = ("keyword", "keyword_list", "int", "float", "bool", "datetime")
Filter = list[Any]


@dataclass(frozen=True)
class Column:
    """One attribute over all rows.

    keyword: `values` are int codes into `vocab`. keyword_list: CSR — row i holds
    `vocab[values[indptr[i]:indptr[i+1]]]`. int/datetime: int64 (datetime = epoch seconds).
    float: float64. bool: bool.
    """

    kind: str
    values: np.ndarray
    indptr: np.ndarray | None = None
    vocab: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown attribute kind {self.kind!r}")
        if (self.kind == "keyword_list") != (self.indptr is not None):
            raise ValueError("indptr is required for keyword_list columns and only for them")
        if self.kind in ("keyword", "keyword_list") and self.vocab is None:
            raise ValueError(f"{self.kind} column needs a vocab")

    def __len__(self) -> int:
        return int(self.indptr.size - 1) if self.indptr is not None else int(self.values.size)

    def code(self, value: str) -> int:
        """The code of a keyword value, -1 if it never occurs."""
        assert self.vocab is not None
        try:
            return self.vocab.index(value)
        except ValueError:
            return -1

    def python_value(self, i: int) -> Any:
        """Row i as a plain Python value (str, list[str], int, float, bool)."""
        if self.kind == "keyword":
            assert self.vocab is not None
            return self.vocab[int(self.values[i])]
        if self.kind == "keyword_list":
            assert self.vocab is not None and self.indptr is not None
            lo, hi = int(self.indptr[i]), int(self.indptr[i + 1])
            return [self.vocab[int(c)] for c in self.values[lo:hi]]
        if self.kind == "float":
            return float(self.values[i])
        if self.kind == "bool":
            return bool(self.values[i])
        return int(self.values[i])


@dataclass(frozen=True)
class AttributeTable:
    """Column-oriented attributes of the base vectors (row i = vector i)."""

    columns: dict[str, Column]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def schema(self) -> dict[str, str]:
        return {name: col.kind for name, col in self.columns.items()}

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """Plain-Python attribute dicts (datetimes stay epoch seconds; adapters convert)."""
        stop = len(self) if stop is None else stop
        for i in range(start, stop):
            yield {name: col.python_value(i) for name, col in self.columns.items()}


def validate(flt: Filter, schema: dict[str, str]) -> None:
    """Raise ValueError if `flt` is malformed or names fields/kinds the schema does not have."""
    if not isinstance(flt, list) or not flt:
        raise ValueError(f"a filter is a non-empty list, got {flt!r}")
    op = flt[0]
    if op in ("and", "or"):
        if len(flt) < 2:
            raise ValueError(f"{op} needs at least one operand")
        for sub in flt[1:]:
            validate(sub, schema)
        return
    if op == "not":
        if len(flt) != 2:
            raise ValueError("not takes exactly one operand")
        validate(flt[1], schema)
        return
    if op not in ("eq", "in", "contains", "range"):
        raise ValueError(f"unknown filter operator {op!r}")
    if len(flt) < 3 or flt[1] not in schema:
        raise ValueError(f"{op}: unknown field in {flt!r}")
    kind = schema[flt[1]]
    if op == "contains" and kind != "keyword_list":
        raise ValueError(f"contains needs a keyword_list field, {flt[1]} is {kind}")
    if op in ("eq", "in") and kind in ("keyword_list", "float"):
        raise ValueError(f"{op} needs a scalar keyword/int/bool/datetime field, {flt[1]} is {kind}")
    if op == "in" and not isinstance(flt[2], list):
        raise ValueError("in takes a list of values")
    if op == "range":
        if kind not in ("int", "float", "datetime") or len(flt) != 4:
            raise ValueError(f"range needs a numeric field and two bounds: {flt!r}")


def fields_of(flt: Filter) -> set[str]:
    if flt[0] in ("and", "or"):
        return set().union(*(fields_of(f) for f in flt[1:]))
    if flt[0] == "not":
        return fields_of(flt[1])
    return {flt[1]}


def mask(flt: Filter, table: AttributeTable) -> np.ndarray:
    """The boolean mask of rows passing `flt` (the benchmark's definition of its semantics)."""
    op = flt[0]
    if op == "and":
        out = mask(flt[1], table)
        for sub in flt[2:]:
            out &= mask(sub, table)
        return out
    if op == "or":
        out = mask(flt[1], table)
        for sub in flt[2:]:
            out |= mask(sub, table)
        return out
    if op == "not":
        return ~mask(flt[1], table)
    col = table.columns[flt[1]]
    if op == "contains":
        assert col.indptr is not None
        # The rows owning the matching list entries (empty rows, even trailing ones, own none).
        hits = np.flatnonzero(col.values == col.code(flt[2]))
        out = np.zeros(len(col), dtype=bool)
        out[np.searchsorted(col.indptr, hits, side="right") - 1] = True
        return out
    if op in ("eq", "in"):
        values: Sequence[Any] = [flt[2]] if op == "eq" else flt[2]
        if col.kind == "keyword":
            values = [c for c in (col.code(v) for v in values) if c >= 0]
        # ORed equality masks: what a careful numpy user writes (np.isin costs 68-95 µs on
        # 100k codes even for one value, against 4-14 µs for one `==`:
        # `python -m benchmarks.bench_baseline_filters`, results/baseline_filters.md).
        out = np.zeros(len(col), dtype=bool)
        for v in values:
            out |= col.values == v
        return out
    lo, hi = flt[2], flt[3]
    out = np.ones(len(col), dtype=bool)
    if lo is not None:
        out &= col.values >= lo
    if hi is not None:
        out &= col.values <= hi
    return out


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _dt(seconds: int) -> str:
    return f'datetime("{datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}")'


def to_sievedb_expr(flt: Filter, schema: dict[str, str]) -> str:
    """The filter in sievedb's text expression language (datetime fields become datetimes)."""
    op = flt[0]
    if op in ("and", "or"):
        return "(" + f" {op} ".join(to_sievedb_expr(f, schema) for f in flt[1:]) + ")"
    if op == "not":
        return f"not ({to_sievedb_expr(flt[1], schema)})"
    field = flt[1]
    lit = _dt if schema[field] == "datetime" else _lit
    if op == "eq":
        return f"{field} == {lit(flt[2])}"
    if op == "in":
        return f"{field} in [{', '.join(lit(v) for v in flt[2])}]"
    if op == "contains":
        return f"{_lit(flt[2])} in {field}"
    lo, hi = flt[2], flt[3]
    if lo is not None and hi is not None:
        return f"{field} between {lit(lo)} and {lit(hi)}"
    if lo is not None:
        return f"{field} >= {lit(lo)}"
    if hi is not None:
        return f"{field} <= {lit(hi)}"
    return "true"
