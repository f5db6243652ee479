"""Streaming readers for bulk-load source files: vectors, ids and attributes, chunk by chunk.

`open_source(path, ...)` returns a `Source` whose `chunks(batch_size, start)` yields `Chunk`s
(source row offset, float32 vectors, ids, attributes) without ever holding the whole file in
memory: binary formats are read with positioned file reads (not memory maps, whose touched
pages would count against the reader's resident memory), Parquet/Arrow by record batch, HDF5 by
dataset slice, ids and JSON-lines attributes line by line in step with the vectors.

| format | extension | layout |
|---|---|---|
| `npy` | .npy | numpy array file, 2-D, C order, any real dtype (converted to float32) |
| `fvecs` / `ivecs` / `bvecs` | .fvecs .ivecs .bvecs | per row: int32 dim, then dim float32 / int32 / uint8 |
| `fbin` / `u8bin` / `i8bin` | .fbin .u8bin .i8bin | big-ann-benchmarks: uint32 rows, uint32 dim, then row-major data |
| `parquet` | .parquet .pq | a list<float> / fixed_size_list vector column plus attribute and id columns |
| `arrow` | .arrow .feather .ipc | Arrow IPC file, same columns as Parquet |
| `hdf5` | .hdf5 .h5 | ann-benchmarks layout: `train` / `test` / `neighbors` datasets |

Every problem (wrong magic or shape, truncated file, ragged rows, malformed JSON line, an
attribute or id file shorter than the vectors, NaN/Inf) raises `SourceError` naming the file
and the row. Parquet/Arrow need `pyarrow`, HDF5 needs `h5py` (the `load` extra); a missing one
raises `SourceError` saying what to install. This module needs only numpy otherwise, so the
server can use it for server-side imports too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np

__all__ = ["FORMATS", "Chunk", "Source", "SourceError", "detect_format", "open_source"]

FORMATS = ("npy", "fvecs", "ivecs", "bvecs", "fbin", "u8bin", "i8bin", "parquet", "arrow", "hdf5")
_EXTENSIONS = {
    ".npy": "npy", ".fvecs": "fvecs", ".ivecs": "ivecs", ".bvecs": "bvecs", ".fbin": "fbin",
    ".u8bin": "u8bin", ".i8bin": "i8bin", ".parquet": "parquet", ".pq": "parquet",
    ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow", ".hdf5": "hdf5", ".h5": "hdf5",
}
_XVECS_DTYPE: dict[str, np.dtype[Any]] = {"fvecs": np.dtype("<f4"), "ivecs": np.dtype("<i4"), "bvecs": np.dtype("u1")}
_BIN_DTYPE: dict[str, np.dtype[Any]] = {"fbin": np.dtype("<f4"), "u8bin": np.dtype("u1"), "i8bin": np.dtype("i1")}


class SourceError(Exception):
    """A source file is unreadable or malformed; the message names the file and row."""


@dataclass
class Chunk:
    offset: int  # source row of the first point
    vectors: np.ndarray  # (n, dim) float32, C-contiguous
    ids: list[Any]
    attributes: list[dict[str, Any] | None] | None


def detect_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    if format:
        if format not in FORMATS:
            raise SourceError(f"unknown format {format!r}; known: {', '.join(FORMATS)}")
        return format
    fmt = _EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise SourceError(
            f"{path}: cannot tell the format from the extension; pass a format "
            f"({', '.join(FORMATS)})"
        )
    return fmt


class _Matrix(Protocol):
    """Random access to the vector rows of a file."""

    rows: int
    dim: int

    def read(self, start: int, stop: int) -> np.ndarray: ...
    def close(self) -> None: ...


# --- binary matrices ---------------------------------------------------------------------------


class _RawMatrix:
    """Fixed-size rows at `header + row * row_bytes`, optionally each prefixed by an int32 dim."""

    def __init__(
        self, path: Path, dtype: np.dtype, rows: int, dim: int, header: int, prefixed: bool
    ) -> None:
        self.path, self.dtype, self.rows, self.dim = path, dtype, rows, dim
        self.header, self.prefixed = header, prefixed
        self.row_bytes = dim * dtype.itemsize + (4 if prefixed else 0)
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()

    def read(self, start: int, stop: int) -> np.ndarray:
        n = stop - start
        self._fh.seek(self.header + start * self.row_bytes)
        raw = self._fh.read(n * self.row_bytes)
        if len(raw) != n * self.row_bytes:
            got = start + len(raw) // self.row_bytes
            raise SourceError(f"{self.path}: truncated at row {got} (expected {self.rows} rows)")
        if self.prefixed:
            rec = np.frombuffer(raw, dtype=np.dtype([("d", "<i4"), ("v", self.dtype, self.dim)]))
            bad = np.flatnonzero(rec["d"] != self.dim)
            if bad.size:
                row = start + int(bad[0])
                raise SourceError(
                    f"{self.path}: row {row} declares dim {int(rec['d'][bad[0]])}, "
                    f"expected {self.dim} (wrong format or corrupt file)"
                )
            data = rec["v"]
        else:
            data = np.frombuffer(raw, dtype=self.dtype).reshape(n, self.dim)
        return np.ascontiguousarray(data, dtype=np.float32)

    def close(self) -> None:
        self._fh.close()


def _open_npy(path: Path) -> _RawMatrix:
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        except ValueError as exc:
            raise SourceError(f"{path}: not a .npy file ({exc})") from None
        header = fh.tell()
    if len(shape) != 2 or fortran or dtype.hasobject or dtype.kind not in "fiu":
        raise SourceError(
            f"{path}: need a 2-D C-order numeric array, found shape {shape} dtype {dtype}"
            f"{' (Fortran order)' if fortran else ''}"
        )
    _check_size(path, header + shape[0] * shape[1] * dtype.itemsize, shape[0])
    return _RawMatrix(path, dtype, shape[0], shape[1], header, prefixed=False)


def _open_xvecs(path: Path, fmt: str) -> _RawMatrix:
    dtype = _XVECS_DTYPE[fmt]
    size = path.stat().st_size
    if size == 0:
        return _RawMatrix(path, dtype, 0, 1, 0, prefixed=True)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if len(head) < 4:
        raise SourceError(f"{path}: truncated at row 0")
    dim = int(np.frombuffer(head, dtype="<i4")[0])
    if not 0 < dim <= 65_536:
        raise SourceError(f"{path}: row 0 declares dim {dim}; not a .{fmt} file")
    row_bytes = 4 + dim * dtype.itemsize
    if size % row_bytes:
        raise SourceError(
            f"{path}: truncated at row {size // row_bytes} ({size} bytes is not a whole number "
            f"of {row_bytes}-byte rows of dim {dim})"
        )
    return _RawMatrix(path, dtype, size // row_bytes, dim, 0, prefixed=True)


def _open_bin(path: Path, fmt: str) -> _RawMatrix:
    dtype = _BIN_DTYPE[fmt]
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8:
        raise SourceError(f"{path}: too short for a .{fmt} header (8 bytes)")
    rows, dim = (int(x) for x in np.frombuffer(head, dtype="<u4"))
    if dim == 0 or dim > 65_536:
        raise SourceError(f"{path}: header declares dim {dim}; not a .{fmt} file")
    _check_size(path, 8 + rows * dim * dtype.itemsize, rows)
    return _RawMatrix(path, dtype, rows, dim, 8, prefixed=False)


def _check_size(path: Path, expected: int, rows: int) -> None:
    size = path.stat().st_size
    if size < expected:
        raise SourceError(
            f"{path}: truncated: {size} bytes, the header promises {expected} ({rows} rows)"
        )


# --- HDF5 ----------------------------------------------------------------------------------


class _Hdf5Matrix:
    def __init__(self, path: Path, dataset: str) -> None:
        h5py = _optional("h5py", "HDF5")
        self.path = path
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise SourceError(f"{path}: not an HDF5 file ({exc})") from None
        if dataset not in self._file:
            names = ", ".join(sorted(self._file.keys()))
            self._file.close()
            raise SourceError(f"{path}: no dataset {dataset!r} (found: {names})")
        self._ds = self._file[dataset]
        if len(self._ds.shape) != 2:
            raise SourceError(f"{path}: dataset {dataset!r} has shape {self._ds.shape}; need 2-D")
        self.rows, self.dim = (int(x) for x in self._ds.shape)

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(self._ds[start:stop], dtype=np.float32)

    def close(self) -> None:
        self._file.close()


# --- Parquet / Arrow -----------------------------------------------------------------------


class _Table:
    """Record batches of a Parquet or Arrow IPC file: vectors plus id/attribute columns."""

    def __init__(
        self, path: Path, fmt: str, vector_column: str, id_column: str | None,
        attribute_columns: Sequence[str],
    ) -> None:
        self.pa = _optional("pyarrow", "Parquet/Arrow")
        self.path, self.fmt = path, fmt
        self.vector_column, self.id_column = vector_column, id_column
        self.attribute_columns = list(attribute_columns)
        try:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                self._pq = pq.ParquetFile(path)
                schema = self._pq.schema_arrow
                self.rows = int(self._pq.metadata.num_rows)
            else:
                from pyarrow import ipc

                self._ipc = ipc.open_file(self.pa.memory_map(str(path), "r"))
                schema = self._ipc.schema
                self.rows = sum(
                    self._ipc.get_batch(i).num_rows for i in range(self._ipc.num_record_batches)
                )
        except (OSError, self.pa.ArrowInvalid) as exc:
            raise SourceError(f"{path}: not a readable {fmt} file ({exc})") from None
        wanted = [vector_column, *([id_column] if id_column else []), *self.attribute_columns]
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise SourceError(f"{path}: no column {missing[0]!r} (columns: {schema.names})")
        vtype = schema.field(vector_column).type
        if isinstance(vtype, self.pa.FixedSizeListType):
            self.dim = vtype.list_size
        elif isinstance(vtype, self.pa.ListType | self.pa.LargeListType):
            self.dim = self._first_dim()
        else:
            raise SourceError(
                f"{path}: column {vector_column!r} has type {vtype}; need a list of numbers"
            )
        self.columns = list(dict.fromkeys(wanted))

    def _first_dim(self) -> int:
        for batch in self._batches(0, 1):
            col = batch.column(self.vector_column)
            return len(col[0].as_py() or []) if len(col) else 0
        return 0

    def _batches(self, start: int, batch_size: int) -> Iterator[Any]:
        """Record batches covering rows from `start` (whole row groups before it skipped)."""
        pos = 0
        if self.fmt == "parquet":
            meta = self._pq.metadata
            groups = []
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                if pos + n > start:
                    groups.append(g)
                else:
                    pos += n
            it = self._pq.iter_batches(batch_size=batch_size, row_groups=groups,
                                       columns=getattr(self, "columns", None))
        else:
            it = (self._ipc.get_batch(i) for i in range(self._ipc.num_record_batches))
        for batch in it:
            n = batch.num_rows
            if pos + n <= start:
                pos += n
                continue
            if pos < start:
                batch = batch.slice(start - pos)
                pos = start
            pos += batch.num_rows
            yield batch

    def chunks(self, batch_size: int, start: int, stop: int) -> Iterator[tuple[int, Any]]:
        """(offset, table slice) of at most batch_size rows, from `start` to `stop`."""
        pending: list[Any] = []
        have, offset = 0, start
        for batch in self._batches(start, batch_size):
            pending.append(batch)
            have += batch.num_rows
            while have >= batch_size or (have and offset + have >= stop):
                table = self.pa.Table.from_batches(pending)
                take = min(batch_size, stop - offset, table.num_rows)
                yield offset, table.slice(0, take)
                offset += take
                rest = table.slice(take)
                pending = rest.to_batches() if rest.num_rows else []
                have = rest.num_rows
                if offset >= stop:
                    return

    def vectors(self, table: Any, offset: int) -> np.ndarray:
        pc = __import__("pyarrow.compute", fromlist=["compute"])
        col = table.column(self.vector_column).combine_chunks()
        if col.null_count:
            row = offset + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise SourceError(f"{self.path}: row {row}: the vector is null")
        if not isinstance(col.type, self.pa.FixedSizeListType):
            lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(lengths != self.dim)
            if bad.size:
                row = offset + int(bad[0])
                raise SourceError(
                    f"{self.path}: row {row} has a {int(lengths[bad[0]])}-element vector, "
                    f"expected {self.dim}"
                )
        flat = pc.list_flatten(col).to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(flat, dtype=np.float32).reshape(len(col), self.dim)

    def ids(self, table: Any) -> list[Any]:
        assert self.id_column is not None
        return list(table.column(self.id_column).to_pylist())

    def attributes(self, table: Any) -> list[dict[str, Any] | None]:
        cols = {c: table.column(c).to_pylist() for c in self.attribute_columns}
        out: list[dict[str, Any] | None] = []
        for i in range(table.num_rows):
            row = {c: v[i] for c, v in cols.items() if v[i] is not None}
            out.append(row or None)
        return out

    def close(self) -> None:
        pass


# --- line files (ids, JSON-lines attributes) -------------------------------------------------


class _Lines:
    """A text file read line by line in step with the vectors."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what
        self._fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.line = 0

    def skip(self, n: int) -> None:
        for _ in range(n):
            if not self._fh.readline():
                raise SourceError(f"{self.path}: has only {self.line} lines; the vectors have more")
            self.line += 1

    def take(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            text = self._fh.readline()
            if not text:
                raise SourceError(
                    f"{self.path}: ends at line {self.line + 1} but the vectors continue "
                    f"(row {self.line}); every row needs {self.what}"
                )
            out.append(text.rstrip("\r\n"))
            self.line += 1
        return out

    def close(self) -> None:
        self._fh.close()


def _parse_attributes(lines: list[str], path: Path, first_row: int) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = []
    for i, text in enumerate(lines):
        if not text.strip():
            out.append(None)  # an empty line: the point has no attributes
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(
                f"{path}: line {first_row + i + 1} (row {first_row + i}): malformed JSON: {exc.msg} "
                f"at column {exc.colno}"
            ) from None
        if value is not None and not isinstance(value, dict):
            raise SourceError(
                f"{path}: line {first_row + i + 1} (row {first_row + i}): expected a JSON object, "
                f"got {type(value).__name__}"
            )
        out.append(value or None)
    return out


def _parse_ids(lines: list[str], path: Path, first_row: int, id_type: str) -> list[Any]:
    out: list[Any] = []
    for i, text in enumerate(lines):
        token = text.strip()
        if not token:
            raise SourceError(f"{path}: line {first_row + i + 1} (row {first_row + i}) is empty")
        if id_type == "int":
            try:
                out.append(int(token))
            except ValueError:
                raise SourceError(
                    f"{path}: line {first_row + i + 1} (row {first_row + i}): {token!r} is not "
                    "an integer id"
                ) from None
        else:
            out.append(token)
    return out


# --- the source ----------------------------------------------------------------------------


class Source:
    """Vectors (+ ids + attributes) of one file, read in chunks; use as a context manager."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        matrix: _Matrix | None,
        table: _Table | None,
        ids_path: Path | None,
        id_type: str,
        attributes_path: Path | None,
    ) -> None:
        self.path, self.format = path, fmt
        self._matrix, self._table = matrix, table
        self.ids_path, self.id_type, self.attributes_path = ids_path, id_type, attributes_path
        inner: Any = matrix if matrix is not None else table
        self.rows: int = int(inner.rows)
        self.dim: int = int(inner.dim)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._matrix is not None:
            self._matrix.close()

    def chunks(
        self, batch_size: int, start: int = 0, limit: int | None = None, check_finite: bool = True
    ) -> Iterator[Chunk]:
        """Chunks of at most `batch_size` rows from source row `start` (to `limit` rows)."""
        if batch_size <= 0:
            raise SourceError(f"batch size must be positive, got {batch_size}")
        stop = self.rows if limit is None else min(self.rows, limit)
        if start >= stop:
            return
        ids_file = _Lines(self.ids_path, "an id") if self.ids_path else None
        attr_file = _Lines(self.attributes_path, "a line") if self.attributes_path else None
        try:
            id_type = self.id_type
            for f in (ids_file, attr_file):
                if f is not None:
                    f.skip(start)
            for offset, vecs, ids, attrs in self._raw_chunks(batch_size, start, stop):
                n = vecs.shape[0]
                if check_finite:
                    finite = np.isfinite(vecs).all(axis=1)
                    if not finite.all():
                        row = offset + int(np.flatnonzero(~finite)[0])
                        raise SourceError(f"{self.path}: row {row} contains NaN or Inf")
                if ids_file is not None:
                    lines = ids_file.take(n)
                    if not id_type:
                        first = lines[0].strip()
                        id_type = "int" if first.isdigit() and (first == "0" or first[0] != "0") \
                            else "str"
                    ids = _parse_ids(lines, ids_file.path, offset, id_type)
                if attr_file is not None:
                    attrs = _parse_attributes(attr_file.take(n), attr_file.path, offset)
                yield Chunk(offset, vecs, ids, attrs)
        finally:
            for f in (ids_file, attr_file):
                if f is not None:
                    f.close()

    def _raw_chunks(
        self, batch_size: int, start: int, stop: int
    ) -> Iterator[tuple[int, np.ndarray, list[Any], list[dict[str, Any] | None] | None]]:
        if self._matrix is not None:
            for offset in range(start, stop, batch_size):
                end = min(offset + batch_size, stop)
                yield offset, self._matrix.read(offset, end), list(range(offset, end)), None
            return
        table_reader = self._table
        assert table_reader is not None
        for offset, table in table_reader.chunks(batch_size, start, stop):
            vecs = table_reader.vectors(table, offset)
            ids = (
                table_reader.ids(table) if table_reader.id_column
                else list(range(offset, offset + table.num_rows))
            )
            for i, pid in enumerate(ids):
                if pid is None:
                    raise SourceError(f"{self.path}: row {offset + i}: the id is null")
            attrs = table_reader.attributes(table) if table_reader.attribute_columns else None
            yield offset, vecs, ids, attrs


def open_source(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    vector_column: str = "vector",
    id_column: str | None = None,
    attribute_columns: Sequence[str] = (),
    attributes_path: str | os.PathLike[str] | None = None,
    ids_path: str | os.PathLike[str] | None = None,
    id_type: str = "",
    dataset: str = "train",
) -> Source:
    """Open a source file (format from the extension unless given); see the module docstring."""
    p = Path(path)
    fmt = detect_format(p, format)
    if not p.is_file():
        raise SourceError(f"{p}: no such file")
    if id_type not in ("", "int", "str"):
        raise SourceError(f"id type must be 'int' or 'str', got {id_type!r}")
    tabular = fmt in ("parquet", "arrow")
    if not tabular and (id_column or attribute_columns):
        raise SourceError(f"{p}: id and attribute columns need a Parquet or Arrow file")
    if id_column and ids_path:
        raise SourceError("give ids from a column or from a file, not both")
    matrix: _Matrix | None = None
    table: _Table | None = None
    if fmt == "npy":
        matrix = _open_npy(p)
    elif fmt in _XVECS_DTYPE:
        matrix = _open_xvecs(p, fmt)
    elif fmt in _BIN_DTYPE:
        matrix = _open_bin(p, fmt)
    elif fmt == "hdf5":
        matrix = _Hdf5Matrix(p, dataset or "train")
    else:
        table = _Table(p, fmt, vector_column or "vector", id_column or None, attribute_columns)
    for extra in (ids_path, attributes_path):
        if extra is not None and not Path(extra).is_file():
            raise SourceError(f"{extra}: no such file")
    return Source(
        p, fmt, matrix, table,
        Path(ids_path) if ids_path else None, id_type,
        Path(attributes_path) if attributes_path else None,
    )


def _optional(module: str, what: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise SourceError(
            f"reading {what} files needs the '{module}' package: pip install 'sievedb[load]'"
        ) from None
