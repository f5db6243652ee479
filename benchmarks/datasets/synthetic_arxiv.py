"""`synthetic-arxiv`: a seeded generator shaped like the arXiv FANNS dataset (arxiv-for-fanns).

It has all 11 attributes of the published dataset (Iff et al. 2025, Table 3), with the paper's
types, as a `benchmarks.filterspec.AttributeTable`:

| field                      | kind         | distribution                                               |
|----------------------------|--------------|------------------------------------------------------------|
| submitter                  | keyword      | usually the first author (70 %), else another author; Zipf |
| license                    | keyword      | 7 licences, arxiv non-exclusive dominant                    |
| has_comment                | bool         | true for 74.216 % (the paper's figure)                      |
| number_of_main_categories  | int          | = len(main_categories): 1 (70 %), 2, 3, 4                    |
| number_of_sub_categories   | int          | = len(sub_categories): 1 … 13, geometric-like tail (the EM attribute) |
| number_of_versions         | int          | 1 + geometric, capped at 20                                 |
| update_date                | datetime     | 2007-05-23 … 2025-06-30 (epoch seconds, day resolution), exponential growth |
| number_of_authors          | int          | = len(authors): lognormal long tail, capped at 100          |
| main_categories            | keyword_list | 38 arXiv archives (incl. the retired ones), Zipf(1.8) — from ~50 % down to ~0.05 % |
| sub_categories             | keyword_list | per main archive a pool of codes (Zipf within the pool)    |
| authors                    | keyword_list | vocabulary of n/2 names, Zipf(1.1) popularity               |

The tails are chosen so that at n = 100k every selectivity bucket of the FANNS workloads
(50 % … 10–100 matches) can be filled by the paper's EM / R / EMIS filters.

Vectors: Gaussian clusters (Zipf-sized) on a random `intrinsic_dim`-dimensional subspace of
R^dim plus small isotropic noise, L2-normalised (low intrinsic dimension, like transformer
embeddings). They are generated in chunks from per-chunk seeds (`vector_chunks`), so any
scale streams to disk in bounded memory; queries are held out from the same distribution.

Variants: `correlated` ties a cluster to a main archive (80 % of its points), a sub-category
neighbourhood, an era of update dates and a community of authors/submitters (topics in real
embeddings); `uncorrelated` draws every attribute independently of the vectors, so a filter's
allowed set is a random sample of the base.

The six-attribute generator of the first filtered benchmark (`bench_filtered.py`) lives on
unchanged in `synthetic_arxiv_v1` and is re-exported here for its callers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.datasets.synthetic_arxiv_v1 import (  # noqa: F401 - legacy re-exports
    ARCHIVES,
    LICENSES,
    ArxivAttributes,
    SyntheticArxiv,
    date_of_day,
    make_dataset,
)
from benchmarks.filterspec import AttributeTable, Column

__all__ = [
    "MAIN_CATEGORIES",
    "SCHEMA",
    "ArxivSpec",
    "SyntheticArxivData",
    "attributes",
    "generate",
    "make_dataset",
    "vector_chunks",
]

# Current archives first (by size), then retired ones — the realistic rare tail.
MAIN_CATEGORIES = (
    "cs", "math", "cond-mat", "physics", "astro-ph", "hep-ph", "quant-ph", "hep-th", "stat",
    "gr-qc", "math-ph", "eess", "nucl-th", "q-bio", "hep-ex", "nlin", "q-fin", "econ",
    "nucl-ex", "hep-lat", "chao-dyn", "solv-int", "alg-geom", "q-alg", "dg-ga", "funct-an",
    "patt-sol", "adap-org", "comp-gas", "chem-ph", "supr-con", "atom-ph", "mtrl-th",
    "acc-phys", "ao-sci", "bayes-an", "plasm-ph", "cmp-lg",
)
SUBS_PER_MAIN = 16
LICENSE_NAMES = LICENSES
LICENSE_P = (0.62, 0.22, 0.05, 0.05, 0.03, 0.02, 0.01)
HAS_COMMENT_P = 0.74216
# P(number_of_sub_categories = v), v = 1..13: every FANNS bucket has a value at n = 100k.
NSUB_P = np.array([.50, .27, .12, .06, .028, .012, .006, .0025, .0013, .0006, .0003, .00015,
                   .00007])
NMAIN_P = np.array([0.70, 0.22, 0.06, 0.02])
DAY = 86_400
FIRST_DAY = (datetime(2007, 5, 23, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days
LAST_DAY = (datetime(2025, 6, 30, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days

SCHEMA: dict[str, str] = {
    "submitter": "keyword",
    "license": "keyword",
    "has_comment": "bool",
    "number_of_main_categories": "int",
    "number_of_sub_categories": "int",
    "number_of_versions": "int",
    "update_date": "datetime",
    "number_of_authors": "int",
    "main_categories": "keyword_list",
    "sub_categories": "keyword_list",
    "authors": "keyword_list",
}


@dataclass(frozen=True)
class ArxivSpec:
    """Everything that determines a synthetic-arxiv dataset (and its cache key)."""

    n: int
    dim: int
    n_queries: int = 1000
    variant: str = "correlated"
    seed: int = 0
    clusters: int = 64
    intrinsic_dim: int = 16
    noise: float = 0.35

    def __post_init__(self) -> None:
        if self.variant not in ("correlated", "uncorrelated"):
            raise ValueError(f"variant must be correlated or uncorrelated, got {self.variant!r}")
        if self.n < 1 or self.dim < 1 or self.n_queries < 0:
            raise ValueError("n and dim must be positive, n_queries non-negative")


@dataclass
class SyntheticArxivData:
    spec: ArxivSpec
    base: np.ndarray  # float32 (n, dim), L2-normalised; a read-only memmap when cached
    queries: np.ndarray  # float32 (n_queries, dim)
    table: AttributeTable


def _zipf_p(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def _zipf_ranks(rng: np.random.Generator, size: int | tuple[int, ...], vocab: int,
                 s: float) -> np.ndarray:
    """0-based ranks in [0, vocab) with P(r) ∝ (r+1)^-s (inverse CDF of the bounded power law)."""
    if abs(s - 1.0) < 1e-9:
        raise ValueError("s = 1 is not supported (use 1.05 or 0.95)")
    u = rng.random(size)
    a = 1.0 - s
    r = ((vocab + 1) ** a - 1.0) * u + 1.0
    return np.minimum(np.floor(r ** (1.0 / a)) - 1, vocab - 1).astype(np.int64)


def _geometry(spec: ArxivSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(basis (k, dim), centres (clusters, k), cluster weights) — shared by every chunk."""
    rng = np.random.default_rng([spec.seed, 0])
    k = min(spec.intrinsic_dim, spec.dim)
    basis = np.linalg.qr(rng.standard_normal((spec.dim, k)))[0].T
    centres = rng.standard_normal((spec.clusters, k)) * 2.0
    w = 1.0 / np.arange(1, spec.clusters + 1) ** 0.8
    return basis, centres, w / w.sum()


def assignments(spec: ArxivSpec, *, queries: bool = False) -> np.ndarray:
    """Cluster of every base (or query) row; cheap, drawn in one go."""
    _, _, weights = _geometry(spec)
    rng = np.random.default_rng([spec.seed, 4 if queries else 3])
    return rng.choice(spec.clusters, size=spec.n_queries if queries else spec.n, p=weights)


BLOCK = 4096  # rows per seeded block: the data does not depend on the chunk size asked for


def vector_chunks(
    spec: ArxivSpec, *, queries: bool = False, chunk: int = 32_768
) -> Iterator[np.ndarray]:
    """L2-normalised float32 rows in chunks of ~`chunk` rows (a multiple of `BLOCK`).

    Block b of rows depends only on (seed, b), so any chunk size yields the same matrix and
    any scale streams in bounded memory.
    """
    basis, centres, _ = _geometry(spec)
    assign = assignments(spec, queries=queries)
    k = basis.shape[0]
    per = max(1, chunk // BLOCK) * BLOCK
    for start in range(0, assign.size, per):
        parts = []
        for b0 in range(start, min(start + per, assign.size), BLOCK):
            a = assign[b0 : b0 + BLOCK]
            rng = np.random.default_rng([spec.seed, 2 if queries else 1, b0 // BLOCK])
            latent = centres[a] + rng.standard_normal((a.size, k)) * spec.noise * 2.0
            vecs = latent @ basis + rng.standard_normal((a.size, spec.dim)) * spec.noise * 0.1
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            parts.append(vecs.astype(np.float32))
        yield np.concatenate(parts)


def _csr(lists_len: np.ndarray, codes: np.ndarray) -> np.ndarray:
    indptr = np.zeros(lists_len.size + 1, dtype=np.int64)
    np.cumsum(lists_len, out=indptr[1:])
    assert indptr[-1] == codes.size
    return indptr


def attributes(spec: ArxivSpec) -> AttributeTable:
    """The 11 attribute columns of the base rows (vectorised; ~1 s per million rows)."""
    n, corr = spec.n, spec.variant == "correlated"
    rng = np.random.default_rng([spec.seed, 7 if corr else 11])
    assign = assignments(spec)
    n_main = len(MAIN_CATEGORIES)
    # Per-cluster topic: primary archive, sub-category neighbourhood, era, author community.
    c_arch = _zipf_ranks(rng, spec.clusters, n_main, 1.8)
    c_shift = rng.integers(0, SUBS_PER_MAIN, size=spec.clusters)
    c_era = rng.normal(0.0, 0.18, size=spec.clusters)

    # main_categories: the first is the cluster's archive (80 %, correlated) or a Zipf draw;
    # cross-lists are further Zipf draws, kept when distinct.
    first = _zipf_ranks(rng, n, n_main, 1.8)
    if corr:
        first = np.where(rng.random(n) < 0.8, c_arch[assign], first)
    want = 1 + rng.choice(NMAIN_P.size, size=n, p=NMAIN_P)
    mains = np.full((n, NMAIN_P.size), -1, dtype=np.int64)
    mains[:, 0] = first
    for j in range(1, NMAIN_P.size):
        cand = _zipf_ranks(rng, n, n_main, 1.8)
        fresh = (want > j) & ~(mains == cand[:, None]).any(axis=1)
        mains[fresh, j] = cand[fresh]
    # Compact each row's kept archives to the front (stable), count them.
    order = np.argsort(mains < 0, axis=1, kind="stable")
    mains = np.take_along_axis(mains, order, axis=1)
    nmain = (mains >= 0).sum(axis=1)

    # sub_categories: one code from each main archive's pool, plus consecutive codes from the
    # first archive's pool up to number_of_sub_categories (distinct by construction).
    nsub_p = NSUB_P / NSUB_P.sum()
    nsub = np.maximum(1 + rng.choice(nsub_p.size, size=n, p=nsub_p), nmain)
    nsub = np.minimum(nsub, SUBS_PER_MAIN + nmain - 1)
    start = _zipf_ranks(rng, (n, NMAIN_P.size), SUBS_PER_MAIN, 1.2)
    if corr:
        start[:, 0] = (start[:, 0] + c_shift[assign]) % SUBS_PER_MAIN
    extra_first = nsub - nmain  # additional codes from the first archive
    sub_lists = np.full((n, SUBS_PER_MAIN + NMAIN_P.size), -1, dtype=np.int64)
    for j in range(SUBS_PER_MAIN):
        take = j <= extra_first
        sub_lists[take, j] = mains[take, 0] * SUBS_PER_MAIN + (start[take, 0] + j) % SUBS_PER_MAIN
    for j in range(1, NMAIN_P.size):
        take = nmain > j
        sub_lists[take, SUBS_PER_MAIN + j] = mains[take, j] * SUBS_PER_MAIN + start[take, j]
    sub_valid = sub_lists >= 0
    assert np.array_equal(sub_valid.sum(axis=1), nsub)

    # authors: long-tailed count; Zipf popularity over a vocabulary of n/2 names; correlated →
    # each cluster has its own community (the ranks are offset per cluster).
    vocab = max(64, n // 2)
    n_auth = np.clip(1 + np.floor(rng.lognormal(1.0, 0.85, size=n)), 1, 100).astype(np.int64)
    total = int(n_auth.sum())
    ranks = _zipf_ranks(rng, total, vocab, 1.1)
    row_of = np.repeat(np.arange(n), n_auth)
    offset = (assign * (vocab // spec.clusters))[row_of] if corr else rng.integers(
        0, vocab, size=n)[row_of]
    authors = (ranks + offset) % vocab
    # Repeated names inside one paper are harmless for `contains`, but keep lists distinct.
    authors, auth_ptr = _dedupe_rows(authors, _csr(n_auth, authors), vocab)
    n_auth = np.diff(auth_ptr)
    other = _zipf_ranks(rng, n, vocab, 1.1) + (assign * (vocab // spec.clusters) if corr else 0)
    submitter = np.where(rng.random(n) < 0.7, authors[auth_ptr[:-1]], other % vocab)

    # update_date: exponential growth of submissions; correlated clusters are "eras".
    t = np.log1p(rng.random(n) * np.expm1(2.2)) / 2.2
    if corr:
        t = np.clip(t + c_era[assign], 0.0, 1.0)
    day = FIRST_DAY + np.round(t * (LAST_DAY - FIRST_DAY)).astype(np.int64)
    versions = np.minimum(1 + rng.geometric(0.55, size=n) - 1, 20).astype(np.int64)
    lic = rng.choice(len(LICENSE_NAMES), size=n, p=LICENSE_P)
    has_comment = rng.random(n) < HAS_COMMENT_P

    names = tuple(f"author-{i:07d}" for i in range(vocab))
    sub_names = tuple(f"{m}.{chr(65 + j // 26)}{chr(65 + j % 26)}" for m in MAIN_CATEGORIES
                      for j in range(SUBS_PER_MAIN))
    main_valid = mains >= 0
    cols = {
        "submitter": Column("keyword", submitter.astype(np.int64), vocab=names),
        "license": Column("keyword", lic.astype(np.int64), vocab=LICENSE_NAMES),
        "has_comment": Column("bool", has_comment),
        "number_of_main_categories": Column("int", nmain.astype(np.int64)),
        "number_of_sub_categories": Column("int", nsub.astype(np.int64)),
        "number_of_versions": Column("int", versions),
        "update_date": Column("datetime", day * DAY),
        "number_of_authors": Column("int", n_auth.astype(np.int64)),
        "main_categories": Column("keyword_list", mains[main_valid],
                                  indptr=_csr(nmain, mains[main_valid]), vocab=MAIN_CATEGORIES),
        "sub_categories": Column("keyword_list", sub_lists[sub_valid],
                                 indptr=_csr(nsub, sub_lists[sub_valid]), vocab=sub_names),
        "authors": Column("keyword_list", authors, indptr=auth_ptr, vocab=names),
    }
    return AttributeTable(cols)


def _dedupe_rows(codes: np.ndarray, indptr: np.ndarray, vocab: int) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Drop repeated codes inside each CSR row, keeping first occurrences and row order."""
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    key = rows * vocab + codes
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(codes.size, dtype=bool)
    keep[first] = True
    counts = np.bincount(rows[keep], minlength=indptr.size - 1)
    return codes[keep], _csr(counts, codes[keep])


def _write_npy(path: Path, spec: ArxivSpec, *, queries: bool) -> np.ndarray:
    rows = spec.n_queries if queries else spec.n
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, spec.dim))
    pos = 0
    for chunk in vector_chunks(spec, queries=queries):
        out[pos : pos + chunk.shape[0]] = chunk
        pos += chunk.shape[0]
    out.flush()
    del out
    tmp.replace(path)
    return np.load(path, mmap_mode="r")


def generate(spec: ArxivSpec, cache_dir: Path | None = None) -> SyntheticArxivData:
    """The dataset; with `cache_dir`, vectors stream to `.npy` files there and are memory-mapped
    (so 1M × 768 never needs more than one chunk of RAM to create)."""
    if cache_dir is None:
        base = np.concatenate(list(vector_chunks(spec)) or [np.empty((0, spec.dim), np.float32)])
        qs = list(vector_chunks(spec, queries=True))
        queries = np.concatenate(qs) if qs else np.empty((0, spec.dim), np.float32)
    else:
        from benchmarks.harness import cache_key

        folder = Path(cache_dir) / "synthetic_arxiv" / cache_key("v2", asdict(spec))
        folder.mkdir(parents=True, exist_ok=True)
        paths = folder / "base.npy", folder / "queries.npy"
        base = np.load(paths[0], mmap_mode="r") if paths[0].exists() else _write_npy(
            paths[0], spec, queries=False)
        queries = np.load(paths[1]) if paths[1].exists() else np.asarray(
            _write_npy(paths[1], spec, queries=True))
    return SyntheticArxivData(spec, base, queries, attributes(spec))
