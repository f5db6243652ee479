"""Back the HNSW graph's level-0 block with transparent huge pages (Linux).

hnswlib keeps every element's level-0 links, vector and label in one `malloc`ed block (about
`capacity × (8·M + 4·dim + 12)` bytes: 268 MB for 160,000 slots at M = 16, dim = 384). A search
hops between elements spread over that block, so with 4 KiB pages nearly every hop also misses
the TLB. Where the kernel's THP mode is `madvise` (the Debian and Ubuntu default) memory gets
huge pages only when asked, and glibc does not ask. After hnswlib allocates the block
(`init_index`, `load_index`, `resize_index`), `advise_new_block` finds it among the process's
anonymous mappings by its size, asks for huge pages (`MADV_HUGEPAGE`: pages faulted in later)
and collapses the pages already there (`MADV_COLLAPSE`, Linux 6.1+). The traversal then reads
the same bytes with fewer TLB misses (`python -m benchmarks.bench_hugepages`).

glibc gives a block above 32 MiB (its largest mmap threshold) a mapping of its own, which is
how the block is found; a smaller one may come from the heap and is then left alone (a graph
that small is mostly within the TLB's reach anyway).

It only gives the kernel advice: a kernel that refuses (THP `never`, an older kernel, not
Linux) leaves the block on small pages, and nothing else changes. `SIEVEDB_HUGEPAGES=0`
turns it off.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

__all__ = [
    "advise_new_block", "anonymous_mappings", "enabled", "huge_bytes_in", "level0_bytes",
    "thp_mode",
]

log = logging.getLogger(__name__)

MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25
HUGE_PAGE = 2 << 20
# glibc serves a block this large with its own mmap: the request plus a header, rounded up to
# whole pages. A mapping whose size is within this of the block's is taken to be it.
_SLACK = 64 << 10

Mapping = tuple[int, int]  # [start, end) addresses


def enabled() -> bool:
    return sys.platform == "linux" and os.environ.get("SIEVEDB_HUGEPAGES", "1") != "0"


def thp_mode() -> str:
    """The kernel's THP mode (`always`, `madvise`, `never`), or `unavailable`."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            text = fh.read()
    except OSError:
        return "unavailable"
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else "unavailable"


def level0_bytes(capacity: int, m: int, dim: int) -> int:
    """hnswlib's level-0 block: per slot, the link count and 2·M links, the vector, the label."""
    return capacity * ((2 * m * 4 + 4) + dim * 4 + 8)


def anonymous_mappings() -> set[Mapping]:
    """The process's private, writable, anonymous mappings (empty where /proc is missing)."""
    out: set[Mapping] = set()
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 5 or not parts[1].startswith("rw") or parts[1][3] != "p":
                    continue  # file-backed, special ([heap], [stack]) or shared
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                out.add((lo, hi))
    except OSError:
        pass
    return out


def advise_new_block(before: set[Mapping], nbytes: int) -> Mapping | None:
    """Ask for huge pages for the block of `nbytes` allocated since `before` (a snapshot of
    `anonymous_mappings()`) and collapse its populated part; returns the advised range (whole
    huge pages inside the block), or None when the block is not found or the kernel refuses.
    """
    if not enabled() or nbytes < HUGE_PAGE:
        return None
    found = [
        (lo, hi) for lo, hi in _new_ranges(before, anonymous_mappings())
        if nbytes <= hi - lo <= nbytes + _SLACK
    ]
    if len(found) != 1:
        log.debug("graph block of %d bytes not found among new mappings (%d)", nbytes,
                  len(found))
        return None
    lo, hi = found[0]
    start = (lo + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)
    end = hi & ~(HUGE_PAGE - 1)
    libc = _libc()
    if end <= start or libc is None or libc.madvise(start, end - start, MADV_HUGEPAGE) != 0:
        return None
    # Chunk by chunk: the kernel refuses a chunk hnswlib has not touched yet (free slots);
    # those get huge pages when first written, thanks to MADV_HUGEPAGE.
    for chunk in range(start, end, HUGE_PAGE):
        libc.madvise(chunk, HUGE_PAGE, MADV_COLLAPSE)
    return start, end


def huge_bytes_in(block: Mapping | None) -> int:
    """Bytes of `block` resident on huge pages now (AnonHugePages of /proc/self/smaps)."""
    if block is None:
        return 0
    total, inside = 0, False
    try:
        with open("/proc/self/smaps") as fh:
            for line in fh:
                head = line.split(maxsplit=1)[0]
                if "-" in head and not head.endswith(":"):
                    lo, hi = (int(x, 16) for x in head.split("-"))
                    inside = lo < block[1] and hi > block[0]
                elif inside and head == "AnonHugePages:":
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return total


def _new_ranges(before: set[Mapping], after: set[Mapping]) -> list[Mapping]:
    """Address ranges mapped in `after` but not in `before`. The kernel merges a new anonymous
    mapping into an adjacent one with the same flags, so a new block can show up as an old
    mapping grown at either end: only the grown part is new."""
    old = sorted(before)
    out: list[Mapping] = []
    for lo, hi in sorted(after - before):
        pieces = [(lo, hi)]
        for olo, ohi in old:
            if ohi <= lo or olo >= hi:
                continue
            pieces = [
                part for plo, phi in pieces
                for part in ((plo, min(phi, olo)), (max(plo, ohi), phi)) if part[0] < part[1]
            ]
        out += pieces
    return out


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL | None:
    global _LIBC
    if _LIBC is None:
        try:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            lib.madvise.restype = ctypes.c_int
        except (OSError, AttributeError):
            return None
        _LIBC = lib
    return _LIBC
