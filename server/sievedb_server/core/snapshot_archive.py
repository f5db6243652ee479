"""The snapshot archive format: one uncompressed tar holding a collection's files + a manifest.

Members, in this order:

    manifest.json    format, collection spec, watermark, counts, size + sha256 of every file
    store/data.mdb   a compact copy of the collection's LMDB environment (one read transaction)
    index.hnsw       the HNSW graph, saved at the same watermark as the LMDB copy
    index.meta       its stamp (`index.hnsw.HnswIndex.save_to`)

Plain tar because the bulk is float32 vectors and graph links, which barely compress, and any
`tar` can list or unpack it. The vector file is not shipped: it is derived from LMDB on
restore (`core.snapshots`), which halves the archive.

Reading trusts nothing in the archive: only the names above, only regular files, each once,
the manifest first. Content is streamed into paths this module builds (never a member's
name), hashed on the way, and must match the manifest's size and sha256. An archive that is
not a sievedb snapshot (not a tar, unknown or unsafe member, unsupported format) is
`InvalidSnapshot` (INVALID_ARGUMENT); one whose bytes disagree with their manifest or
checksum (truncated, bit flips) is `CorruptSnapshot` (DATA_LOSS).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from sievedb_server.core.types import CollectionSpec
from sievedb_server.errors import CorruptData, CorruptSnapshot, InvalidSnapshot
from sievedb_server.storage import serde

__all__ = [
    "FILES",
    "FORMAT",
    "MANIFEST",
    "FileEntry",
    "Manifest",
    "fsync_dir",
    "read_archive",
    "read_manifest",
    "sha256_file",
    "write_archive",
]

FORMAT = 1
KIND = "sievedb-collection-snapshot"
MANIFEST = "manifest.json"
FILES = ("store/data.mdb", "index.hnsw", "index.meta")
MAX_MANIFEST_BYTES = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_BLOCK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    collection: str
    spec: CollectionSpec
    watermark: int
    points: int
    next_label: int
    created_at: str
    files: dict[str, FileEntry]
    store_format: int
    aliases: tuple[str, ...] = ()  # aliases that pointed at the collection (not restored)
    models: tuple[str, ...] = ()  # registered model ids (the registry travels inside LMDB)
    format: int = FORMAT

    def to_json(self) -> bytes:
        doc = {
            "kind": KIND,
            "format": self.format,
            "created_at": self.created_at,
            "collection": self.collection,
            # The spec's encoding has one owner (storage.serde); the manifest holds its map form.
            "spec": msgpack.unpackb(serde.pack_spec(self.spec), raw=False)["spec"],
            "store_format": self.store_format,
            "watermark": self.watermark,
            "points": self.points,
            "next_label": self.next_label,
            "aliases": list(self.aliases),
            "models": list(self.models),
            "files": {name: {"size": e.size, "sha256": e.sha256} for name, e in self.files.items()},
        }
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise InvalidSnapshot(f"the snapshot manifest is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise InvalidSnapshot("not a sievedb collection snapshot (manifest kind)")
        if doc.get("format") != FORMAT:
            raise InvalidSnapshot(
                f"unsupported snapshot format {doc.get('format')!r}: this server reads format "
                f"{FORMAT}"
            )
        try:
            spec = serde.unpack_spec(msgpack.packb({"v": 1, "spec": doc["spec"]}))
            files = {
                str(name): FileEntry(int(e["size"]), str(e["sha256"]))
                for name, e in doc["files"].items()
            }
            manifest = cls(
                collection=str(doc["collection"]),
                spec=spec,
                watermark=int(doc["watermark"]),
                points=int(doc["points"]),
                next_label=int(doc["next_label"]),
                created_at=str(doc["created_at"]),
                files=files,
                store_format=int(doc["store_format"]),
                aliases=tuple(str(a) for a in doc.get("aliases", ())),
                models=tuple(str(m) for m in doc.get("models", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError, CorruptData) as exc:
            raise InvalidSnapshot(f"the snapshot manifest is malformed: {exc}") from None
        if set(files) != set(FILES):
            raise InvalidSnapshot(f"the snapshot manifest must list exactly {list(FILES)}")
        for name, entry in files.items():
            if entry.size < 0 or not _HEX64.fullmatch(entry.sha256):
                raise InvalidSnapshot(f"the snapshot manifest entry of {name} is malformed")
        return manifest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _HashingWriter:
    """A write-only file wrapper that hashes what passes through (tarfile needs tell())."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def tell(self) -> int:
        return self.size


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(time.time())
    return info


def write_archive(dest: Path, staging: Path, manifest: Manifest, *, sync: bool = True) -> str:
    """Write `staging`'s FILES + `manifest` as the archive `dest` (atomically); its sha256."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            out = _HashingWriter(fh)
            sink: Any = out  # tarfile only needs write() and tell()
            with tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
                body = manifest.to_json()
                tar.addfile(_tarinfo(MANIFEST, len(body)), io.BytesIO(body))
                for name in FILES:
                    path = staging / name
                    with open(path, "rb") as src:
                        tar.addfile(_tarinfo(name, manifest.files[name].size), src)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
        if sync:
            fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out.digest.hexdigest()


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The archive's members, with tar-level read errors reported as domain errors."""
    it = iter(tar)
    while True:
        try:
            member = next(it)
        except StopIteration:
            return
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise CorruptSnapshot(f"the snapshot archive is damaged or truncated: {exc}") from None
        yield member


def _check_member(member: tarfile.TarInfo, seen: set[str]) -> None:
    if member.name not in FILES and member.name != MANIFEST:
        raise InvalidSnapshot(
            f"unexpected member {member.name[:200]!r} in the snapshot archive "
            f"(a sievedb snapshot holds only {MANIFEST} and {', '.join(FILES)})"
        )
    if not member.isreg():
        raise InvalidSnapshot(f"snapshot member {member.name!r} is not a regular file")
    if member.name in seen:
        raise InvalidSnapshot(f"snapshot member {member.name!r} appears twice")
    seen.add(member.name)


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidSnapshot(f"not a sievedb snapshot archive (not a tar file: {exc})") from None


def _manifest_of(tar: tarfile.TarFile, first: tarfile.TarInfo | None) -> Manifest:
    if first is None or first.name != MANIFEST:
        raise InvalidSnapshot(f"not a sievedb snapshot archive: {MANIFEST} must come first")
    _check_member(first, set())
    if first.size > MAX_MANIFEST_BYTES:
        raise InvalidSnapshot(f"the snapshot manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    src = tar.extractfile(first)
    assert src is not None  # a regular file
    try:
        raw = src.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CorruptSnapshot(f"the snapshot manifest is truncated: {exc}") from None
    if len(raw) != first.size:
        raise CorruptSnapshot("the snapshot manifest is truncated")
    return Manifest.from_json(raw)


def read_manifest(path: Path) -> Manifest:
    """Only the manifest (listing snapshots); raises like `read_archive`."""
    with _open_tar(path) as tar:
        return _manifest_of(tar, next(_members(tar), None))


def read_archive(path: Path, dest: Path, *, sync: bool = True) -> Manifest:
    """Verify the archive at `path` and extract its files under the new folder `dest`.

    Every file is checked against the manifest (size, sha256) as it is written; on any error
    the caller removes `dest`.
    """
    dest.mkdir(parents=True)
    (dest / "store").mkdir()
    with _open_tar(path) as tar:
        members = _members(tar)
        manifest = _manifest_of(tar, next(members, None))
        seen = {MANIFEST}
        for member in members:
            _check_member(member, seen)
            entry = manifest.files[member.name]
            if member.size != entry.size:
                raise CorruptSnapshot(
                    f"snapshot member {member.name} has {member.size} bytes; the manifest says "
                    f"{entry.size}"
                )
            _extract(tar, member, dest / member.name, entry, sync=sync)
    missing = [name for name in FILES if name not in seen]
    if missing:
        raise CorruptSnapshot(f"the snapshot archive lacks {', '.join(missing)} (truncated?)")
    if sync:
        fsync_dir(dest / "store")
        fsync_dir(dest)
    return manifest


def _extract(
    tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, entry: FileEntry, *, sync: bool
) -> None:
    src = tar.extractfile(member)
    assert src is not None  # checked: a regular file
    digest = hashlib.sha256()
    size = 0
    with open(target, "xb") as out:
        try:
            while block := src.read(_BLOCK):
                digest.update(block)
                size += len(block)
                out.write(block)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise CorruptSnapshot(
                f"snapshot member {member.name} is truncated or unreadable: {exc}"
            ) from None
        if sync:
            out.flush()
            os.fsync(out.fileno())
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise CorruptSnapshot(
            f"snapshot member {member.name} does not match its checksum in the manifest"
        )
