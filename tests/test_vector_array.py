"""`VectorArray`: vectors in memory, written through to their file, read back on open."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from sievedb_server.index import vectors as vectors_module
from sievedb_server.index.vectors import VectorArray

DIM = 5


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def test_rows_reach_the_file_and_come_back_on_open(tmp_path: Path) -> None:
    path = tmp_path / "vectors.f32"
    va = VectorArray(path, DIM, 10, keep_sqnorms=True)
    first, second = rows(10, 1), rows(3, 2)
    va.write(np.arange(10), first)
    va.write(np.array([7, 2, 9]), second)  # scattered updates: one pwrite per run
    va.ensure_capacity(5000)  # growth keeps the rows and the file grows with the array
    va.write(np.array([4321]), rows(1, 3))
    expected = first.copy()
    expected[[7, 2, 9]] = second
    on_disk = np.fromfile(path, dtype="<f4").reshape(-1, DIM)
    np.testing.assert_array_equal(on_disk[:10], expected)  # before any flush: written through
    np.testing.assert_array_equal(on_disk[4321], rows(1, 3)[0])
    va.close()

    again = VectorArray(path, DIM, 4322, keep_sqnorms=True)
    np.testing.assert_array_equal(again.data[:10], expected)
    np.testing.assert_array_equal(again.data[4321], rows(1, 3)[0])
    assert not again.data[10:4321].any()
    again.recompute_sqnorms()
    assert again.sqnorms is not None
    np.testing.assert_allclose(again.sqnorms[:10], (expected**2).sum(axis=1), rtol=1e-6)
    again.close()


def test_a_failed_write_through_keeps_the_row_and_blocks_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    va = VectorArray(tmp_path / "vectors.f32", DIM, 10, keep_sqnorms=False)
    va.write(np.arange(4), rows(4, 1))
    va.flush()

    def broken(*_: object) -> int:
        raise OSError(errno.EIO, "injected I/O error")

    monkeypatch.setattr(vectors_module.os, "pwrite", broken)
    va.write(np.array([5]), rows(1, 2))
    np.testing.assert_array_equal(va.data[5], rows(1, 2)[0])  # searchable from memory
    monkeypatch.setattr(vectors_module.os, "pwrite", os.pwrite)
    with pytest.raises(OSError, match="missed a write"):
        va.flush()  # the collection's checkpoint fails: its stamp stays, open replays from LMDB
    with pytest.raises(OSError):
        va.close()
    assert va._fd is None  # closed all the same


def test_sq8_codes_follow_every_write_growth_and_reopen(tmp_path: Path) -> None:
    """The in-memory SQ8 mirror is always the encoding of the float32 rows (the exact scan
    relies on its error bound), through writes, growth and a reopen from the file."""
    path = tmp_path / "vectors.f32"
    va = VectorArray(path, DIM, 10, keep_sqnorms=False)

    def agrees(arr: VectorArray) -> None:
        codes, meta = vectors_module.sq8_encode(arr.data)
        np.testing.assert_array_equal(arr.codes, codes)
        np.testing.assert_array_equal(arr.code_meta, meta)

    va.write(np.arange(10), rows(10, 1))
    va.write(np.array([3, 3, 8]), rows(3, 2))  # a repeated label: the last row wins
    agrees(va)
    va.ensure_capacity(3000)
    va.write(np.array([2999]), rows(1, 3))
    agrees(va)
    va.close()
    again = VectorArray(path, DIM, 3000, keep_sqnorms=False)
    agrees(again)
    again.close()
