"""The arXiv FANNS dataset (arxiv-for-fanns, Iff et al. 2025) from its published files.

One folder per scale (small 1k / medium 100k / large 2.7M base vectors), the Hugging Face file
names unchanged:

| file | content |
|---|---|
| `database_vectors.fvecs` | base, 4096-d float32, L2-normalised (required) |
| `query_vectors.fvecs` | 10k query vectors (required) |
| `database_attributes.jsonl` | one JSON object per base vector, the 11 attributes |
| `em_query_attributes.jsonl` | `{"label": int}` → `number_of_sub_categories == label` |
| `r_query_attributes.jsonl` | `{"range_start": ., "range_end": .}` → `update_date` in [start, end] |
| `emis_query_attributes.jsonl` | `{"label": str}` → `main_categories` contains label |
| `ground_truth.ivecs`, `ground_truth_{em,r,emis}.ivecs` | exact L2 top-100, SHORT rows where fewer than 100 items pass |

Attribute kinds: submitter, license → keyword; has_comment → bool; number_of_* → int;
main_categories, sub_categories, authors → keyword_list; update_date → datetime (epoch seconds,
UTC). How the files encode `update_date` is not documented; third-party loaders read it as an
int. `date_format="auto"` (the default) therefore recognises, from the whole column, YYYYMMDD
integers, days since 1970-01-01, epoch seconds or ISO date strings, and decodes the R query
bounds the same way; `date_format="raw"` keeps the integers as an int column instead.

The JSONL is streamed line by line into compact columns (with `cache_dir`, the parsed table
is kept as one `.npz` there and reused: the large set's 1.1 GB of JSON parses once); vectors
are memory-mapped.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks.datasets.base import Dataset, TableBuilder
from benchmarks.datasets.formats import (
    FormatError,
    check_fvecs_dims,
    fvecs_as_float,
    fvecs_memmap,
    fvecs_records,
    read_ivecs_ragged,
)
from benchmarks.filterspec import AttributeTable, Column, Filter

__all__ = [
    "ATTRIBUTE_KINDS",
    "DATE_FORMATS",
    "ArxivFanns",
    "decode_dates",
    "load_table",
    "save_table",
]

ATTRIBUTE_KINDS = {
    "submitter": "keyword",
    "license": "keyword",
    "has_comment": "bool",
    "number_of_main_categories": "int",
    "number_of_sub_categories": "int",
    "number_of_versions": "int",
    "number_of_authors": "int",
    "update_date": "datetime",
    "main_categories": "keyword_list",
    "sub_categories": "keyword_list",
    "authors": "keyword_list",
}
DATE_FIELD = "update_date"
TABLE_CACHE_VERSION = 1
DATE_FORMATS = ("auto", "yyyymmdd", "days", "seconds", "iso", "raw")
BASE_FILE, QUERY_FILE, ATTR_FILE = (
    "database_vectors.fvecs",
    "query_vectors.fvecs",
    "database_attributes.jsonl",
)
QUERY_ATTR_FILES = {w: f"{w}_query_attributes.jsonl" for w in ("em", "r", "emis")}
GT_FILES = {
    "unfiltered": "ground_truth.ivecs",
    "em": "ground_truth_em.ivecs",
    "r": "ground_truth_r.ivecs",
    "emis": "ground_truth_emis.ivecs",
}


def _detect_date_format(raw: Any) -> str:
    if isinstance(raw, list):  # strings
        return "iso"
    values = np.asarray(raw, dtype=np.int64)
    if values.size == 0:
        return "seconds"
    lo, hi = int(values.min()), int(values.max())
    month, day = values // 100 % 100, values % 100
    if (
        lo >= 1000_01_01
        and hi <= 9999_12_31
        and bool(np.all((month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)))
    ):
        return "yyyymmdd"
    if lo >= 0 and hi < 1_000_000:  # days: 1_000_000 days is the year 4707
        return "days"
    return "seconds"


def decode_dates(raw: Any, fmt: str) -> np.ndarray:
    """Encoded dates (ints, or ISO strings for "iso") → int64 epoch seconds (UTC midnight)."""
    if fmt == "iso":
        text = [str(s).removesuffix("Z") for s in raw]
        return np.array(text, dtype="datetime64[s]").astype(np.int64)
    values = np.asarray(raw, dtype=np.int64)
    if fmt in ("seconds", "raw"):
        return values
    if fmt == "days":
        return values * 86_400
    if fmt == "yyyymmdd":
        y, m, d = values // 10_000, values // 100 % 100, values % 100
        if values.size and not bool(np.all((m >= 1) & (m <= 12) & (d >= 1) & (d <= 31))):
            raise FormatError(f"not YYYYMMDD dates: {values[:5].tolist()} ...")
        days = (
            ((y - 1970).astype("timedelta64[Y]") + np.datetime64("1970", "Y")).astype(
                "datetime64[M]"
            )
            + (m - 1).astype("timedelta64[M]")
        ).astype("datetime64[D]") + (d - 1).astype("timedelta64[D]")
        return days.astype("datetime64[s]").astype(np.int64)
    raise ValueError(f"date_format must be one of {DATE_FORMATS}, got {fmt!r}")


def save_table(path: Path, table: AttributeTable, date_format: str) -> None:
    """Write a parsed attribute table as one .npz (vocabularies as JSON; atomic replace)."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"date_format": date_format, "columns": {}}
    for i, (name, col) in enumerate(table.columns.items()):
        meta["columns"][name] = {"kind": col.kind, "slot": i}
        arrays[f"v{i}"] = np.asarray(col.values)
        if col.indptr is not None:
            arrays[f"p{i}"] = np.asarray(col.indptr)
        if col.vocab is not None:
            arrays[f"w{i}"] = np.frombuffer(json.dumps(col.vocab).encode(), dtype=np.uint8)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle overload
    os.replace(tmp, path)


def load_table(path: Path) -> tuple[AttributeTable, str]:
    """Read a table written by `save_table` → (table, the date format it was decoded with)."""
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes())
        columns: dict[str, Column] = {}
        for name, info in meta["columns"].items():
            i = info["slot"]
            columns[name] = Column(
                info["kind"],
                z[f"v{i}"],
                indptr=z[f"p{i}"] if f"p{i}" in z.files else None,
                vocab=tuple(json.loads(z[f"w{i}"].tobytes())) if f"w{i}" in z.files else None,
            )
    return AttributeTable(columns), meta["date_format"]


def _jsonl(
    path: Path, limit: int | None = None, progress: bool = False
) -> Iterator[dict[str, Any]]:
    """The objects of a JSON-lines file, streamed (blank lines skipped), at most `limit`."""
    total = path.stat().st_size
    seen = 0
    with (
        open(path, encoding="utf-8") as fh,
        tqdm(
            total=total,
            desc=path.name,
            unit="B",
            unit_scale=True,
            disable=None if progress else True,
        ) as bar,
    ):
        for lineno, line in enumerate(fh, start=1):
            bar.update(len(line))
            if not line.strip():
                continue
            if limit is not None and seen >= limit:
                return
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise FormatError(f"{path}:{lineno}: expected a JSON object")
            seen += 1
            yield obj


def _infer_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "keyword"
    if isinstance(value, list):
        return "keyword_list"
    return None


class ArxivFanns(Dataset):
    """arxiv-for-fanns-{small,medium,large} from a local folder (see the module docstring).

    `limit` keeps the first N base vectors (prefix subset; published ground truth is then
    ignored and recomputed), `query_limit` the first M queries (published rows still apply).
    """

    metric = "l2"  # the published ground truth is L2; the vectors are unit-norm, so = ip order
    normalized = True

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        limit: int | None = None,
        query_limit: int | None = None,
        date_format: str = "auto",
        progress: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        if date_format not in DATE_FORMATS:
            raise ValueError(f"date_format must be one of {DATE_FORMATS}, got {date_format!r}")
        for required in (BASE_FILE, QUERY_FILE):
            if not (self.path / required).is_file():
                raise FileNotFoundError(
                    f"{self.path}: no {required} (not an arxiv-for-fanns folder)"
                )
        self.name = name or self.path.resolve().name
        self.progress = progress
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.date_format = date_format  # "auto" becomes the detected format once read
        self._requested_date_format = date_format
        self._full_n = int(fvecs_records(self.path / BASE_FILE).shape[0])
        self._records = fvecs_records(self.path / BASE_FILE, limit)
        self._base = fvecs_as_float(self._records)
        self._query_limit = query_limit
        self._queries: np.ndarray | None = None
        self._table: AttributeTable | None = None
        self._table_loaded = False
        self._workloads: dict[str, list[Filter | None]] | None = None

    # --- vectors ----------------------------------------------------------------------------

    @property
    def n(self) -> int:
        return int(self._base.shape[0])

    @property
    def dim(self) -> int:
        return int(self._base.shape[1])

    @property
    def subset(self) -> bool:
        return self.n < self._full_n

    @property
    def key(self) -> str:
        names = [BASE_FILE, QUERY_FILE, ATTR_FILE, *QUERY_ATTR_FILES.values()]
        sizes = {f: (self.path / f).stat().st_size for f in names if (self.path / f).is_file()}
        return (
            f"arxiv-fanns:{self.path.resolve()}:{self.n}:{self._query_limit}:"
            f"{self._requested_date_format}:{json.dumps(sizes, sort_keys=True)}"
        )

    def base_array(self) -> np.ndarray:
        return self._base

    def base_chunks(self, chunk_rows: int = 65_536) -> Iterator[np.ndarray]:
        if chunk_rows <= 0:
            raise ValueError("chunk_rows must be positive")
        for start in range(0, self.n, chunk_rows):
            stop = min(self.n, start + chunk_rows)
            check_fvecs_dims(self._records[start:stop], self.path / BASE_FILE, start)
            yield np.ascontiguousarray(self._base[start:stop], dtype=np.float32)

    def queries(self) -> np.ndarray:
        if self._queries is None:
            q = fvecs_memmap(self.path / QUERY_FILE, self._query_limit)
            if q.shape[1] != self.dim:
                raise FormatError(f"{self.path}: queries are {q.shape[1]}-d, the base {self.dim}-d")
            self._queries = np.ascontiguousarray(q, dtype=np.float32)
        return self._queries

    # --- attributes and filters ---------------------------------------------------------------

    def table(self) -> AttributeTable | None:
        if not self._table_loaded:
            path = self.path / ATTR_FILE
            if not path.is_file():
                self._table = None
            else:
                cached = self._table_cache_path()
                if cached is not None and cached.is_file():
                    self._table, self.date_format = load_table(cached)
                else:
                    self._table = self._read_table(path)
                    if cached is not None:
                        save_table(cached, self._table, self.date_format)
            self._table_loaded = True
        return self._table

    def _table_cache_path(self) -> Path | None:
        """Where the parsed attributes are cached (`cache_dir`), keyed by the files and limit."""
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(f"{TABLE_CACHE_VERSION}:{self.key}".encode()).hexdigest()[:24]
        return self.cache_dir / f"arxiv-attrs-{digest}.npz"

    def _read_table(self, path: Path) -> AttributeTable:
        rows = _jsonl(path, self.n, self.progress)
        first = next(rows, None)
        if first is None:
            raise FormatError(f"{path}: empty, expected {self.n} rows")
        kinds: dict[str, str] = {}
        for field, value in first.items():
            kind = ATTRIBUTE_KINDS.get(field) or _infer_kind(value)
            if kind is not None and field != DATE_FIELD:
                kinds[field] = kind
        builder = TableBuilder(kinds)
        has_date = DATE_FIELD in first
        dates: Any = [] if isinstance(first.get(DATE_FIELD), str) else array("q")

        def add(row: dict[str, Any]) -> None:
            builder.add(row)
            if has_date:
                value = row.get(DATE_FIELD)
                if value is None:
                    raise FormatError(f"{path}: row {builder.rows - 1} has no {DATE_FIELD}")
                dates.append(value if isinstance(dates, list) else int(value))

        add(first)
        for row in rows:
            add(row)
        if builder.rows != self.n:
            raise FormatError(f"{path}: {builder.rows} attribute rows for {self.n} vectors")
        table = builder.build()
        if has_date:
            fmt = self.date_format
            if fmt == "auto":
                fmt = _detect_date_format(dates)
            self.date_format = fmt
            kind = "int" if fmt == "raw" else "datetime"
            columns = dict(table.columns)
            columns[DATE_FIELD] = Column(kind, decode_dates(dates, fmt))
            table = AttributeTable(columns)
        return table

    def workloads(self) -> dict[str, list[Filter | None]]:
        if self._workloads is None:
            nq = self.nq
            out: dict[str, list[Filter | None]] = {"unfiltered": [None] * nq}
            for workload, fname in QUERY_ATTR_FILES.items():
                path = self.path / fname
                if path.is_file():
                    out[workload] = self._read_filters(workload, path, nq)
            self._workloads = out
        return self._workloads

    def _read_filters(self, workload: str, path: Path, nq: int) -> list[Filter | None]:
        rows = list(_jsonl(path, nq))
        if len(rows) < nq:
            raise FormatError(f"{path}: {len(rows)} query attribute rows for {nq} queries")
        try:
            if workload == "em":
                return [["eq", "number_of_sub_categories", int(r["label"])] for r in rows]
            if workload == "emis":
                return [["contains", "main_categories", str(r["label"])] for r in rows]
            self.table()  # resolves date_format ("auto") from the base column
            starts = [r["range_start"] for r in rows]
            ends = [r["range_end"] for r in rows]
        except KeyError as exc:
            raise FormatError(f"{path}: a row lacks {exc}") from None
        fmt = self.date_format
        if fmt == "auto":  # no base attributes to tell; judge by the bounds themselves
            both = [*starts, *ends]
            strings = bool(both) and isinstance(both[0], str)
            fmt = _detect_date_format(both if strings else np.asarray(both, dtype=np.int64))
        lo, hi = decode_dates(starts, fmt), decode_dates(ends, fmt)
        return [["range", DATE_FIELD, int(a), int(b)] for a, b in zip(lo, hi, strict=True)]

    # --- ground truth -------------------------------------------------------------------------

    def ground_truth(self, workload: str) -> np.ndarray | None:
        fname = GT_FILES.get(workload)
        if fname is None or self.subset or not (self.path / fname).is_file():
            return None
        gt = read_ivecs_ragged(self.path / fname)
        if gt.shape[0] < self.nq:
            raise FormatError(f"{self.path / fname}: {gt.shape[0]} rows for {self.nq} queries")
        return gt[: self.nq]
