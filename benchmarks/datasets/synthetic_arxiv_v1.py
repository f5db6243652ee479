"""A seeded synthetic dataset whose attributes mimic the arXiv FANNS dataset (arxiv-for-fanns).

Vectors come from `sievedb.synthetic.clustered_vectors` (Gaussian clusters on a low-dimensional
subspace, Zipf-skewed cluster sizes); the last `n_queries` rows of one draw are held out as
queries so base and queries share a distribution. Attributes follow the shapes the arXiv
FANNS paper reports for its 11 attributes (Table 3 / Fig. 20), reduced to the six a filter
benchmark needs:

| field             | type         | distribution                                                     |
|-------------------|--------------|------------------------------------------------------------------|
| main_category     | keyword      | 20 arXiv archives, Zipf(1.1) skew; *correlated*: 80 % of a cluster's points share the cluster's archive |
| sub_categories    | keyword_list | 1–4 codes, mostly from the main archive's pool, some cross-lists  |
| number_of_authors | integer      | 1 + geometric-lognormal long tail, capped at 300                 |
| update_date       | datetime     | 2007-05-23 … 2025-06-30, growing exponentially (arXiv's growth); correlated: per-cluster shift |
| license           | keyword      | 7 licences, arxiv non-exclusive dominant                          |
| has_comment       | boolean      | true for 74.2 % (the paper's figure)                             |

`variant="uncorrelated"` draws every attribute independently of the vectors (so the allowed
set of a query is a random sample of the base); `"correlated"` ties main_category,
sub_categories and update_date to the vector clusters, like topics in real embeddings.

The attributes are kept as numpy columns (`ArxivAttributes`) so exact filter masks are cheap;
`to_records()` turns them into sievedb attribute maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sievedb.synthetic import clustered_vectors

__all__ = [
    "ARCHIVES",
    "LICENSES",
    "ArxivAttributes",
    "SyntheticArxiv",
    "date_of_day",
    "make_dataset",
]

ARCHIVES = (
    "cs", "math", "cond-mat", "physics", "astro-ph", "hep-ph", "quant-ph", "hep-th", "stat",
    "gr-qc", "math-ph", "eess", "nucl-th", "q-bio", "hep-ex", "nlin", "q-fin", "econ",
    "nucl-ex", "hep-lat",
)
SUBS_PER_ARCHIVE = 12
LICENSES = (
    "arxiv-nonexclusive-1.0", "cc-by-4.0", "cc-by-nc-sa-4.0", "cc-by-nc-nd-4.0",
    "cc-by-sa-4.0", "cc0-1.0", "public-domain",
)
LICENSE_P = (0.62, 0.22, 0.05, 0.05, 0.03, 0.02, 0.01)
HAS_COMMENT_P = 0.74216
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_DAY = (datetime(2007, 5, 23, tzinfo=UTC) - EPOCH).days
LAST_DAY = (datetime(2025, 6, 30, tzinfo=UTC) - EPOCH).days
CLUSTERS = 64


def date_of_day(day: int) -> datetime:
    """Days since 1970-01-01 → an aware UTC datetime at midnight."""
    return EPOCH + timedelta(days=int(day))


def _zipf_p(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


@dataclass
class ArxivAttributes:
    """Column-oriented attributes: one row per base vector."""

    main_category: np.ndarray  # int16 index into ARCHIVES
    sub_categories: np.ndarray  # bool (n, n_subs) membership matrix
    sub_names: tuple[str, ...]
    number_of_authors: np.ndarray  # int32
    update_day: np.ndarray  # int32 days since 1970-01-01
    license: np.ndarray  # int8 index into LICENSES
    has_comment: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.main_category.shape[0])

    def to_records(self, start: int = 0, stop: int | None = None) -> list[dict[str, object]]:
        stop = len(self) if stop is None else stop
        subs = np.asarray(self.sub_names)
        out: list[dict[str, object]] = []
        for i in range(start, stop):
            out.append({
                "main_category": ARCHIVES[int(self.main_category[i])],
                "sub_categories": subs[self.sub_categories[i]].tolist(),
                "number_of_authors": int(self.number_of_authors[i]),
                "update_date": date_of_day(int(self.update_day[i])),
                "license": LICENSES[int(self.license[i])],
                "has_comment": bool(self.has_comment[i]),
            })
        return out


@dataclass
class SyntheticArxiv:
    base: np.ndarray  # float32 (n, dim), L2-normalised
    queries: np.ndarray  # float32 (n_queries, dim), L2-normalised
    attributes: ArxivAttributes
    variant: str
    seed: int


def _sub_names() -> tuple[str, ...]:
    return tuple(f"{a}.{chr(65 + j // 26)}{chr(65 + j % 26)}" for a in ARCHIVES
                 for j in range(SUBS_PER_ARCHIVE))


def make_attributes(
    assign: np.ndarray, *, variant: str, seed: int
) -> ArxivAttributes:
    if variant not in ("correlated", "uncorrelated"):
        raise ValueError(f"variant must be 'correlated' or 'uncorrelated', got {variant!r}")
    rng = np.random.default_rng([seed, 7 if variant == "correlated" else 11])
    n = len(assign)
    n_arch = len(ARCHIVES)
    arch_p = _zipf_p(n_arch, 1.1)
    # main_category: Zipf over archives; correlated → a cluster mostly shares one archive.
    free = rng.choice(n_arch, size=n, p=arch_p)
    if variant == "correlated":
        cluster_arch = rng.choice(n_arch, size=CLUSTERS, p=arch_p)
        main = np.where(rng.random(n) < 0.8, cluster_arch[assign % CLUSTERS], free)
    else:
        main = free
    # sub_categories: 1-4 codes; the first from the main archive's pool (Zipf within the pool,
    # shifted per cluster when correlated), extra ones 70 % same archive, 30 % cross-listed.
    names = _sub_names()
    subs = np.zeros((n, len(names)), dtype=bool)
    count = 1 + rng.choice(4, size=n, p=(0.55, 0.28, 0.12, 0.05))
    sub_p = _zipf_p(SUBS_PER_ARCHIVE, 1.0)
    within = rng.choice(SUBS_PER_ARCHIVE, size=(n, 4), p=sub_p)
    if variant == "correlated":
        shift = rng.integers(0, SUBS_PER_ARCHIVE, size=CLUSTERS)[assign % CLUSTERS]
        within[:, 0] = (within[:, 0] + shift) % SUBS_PER_ARCHIVE
    cross = rng.random((n, 4)) < 0.3
    cross[:, 0] = False
    other_arch = rng.choice(n_arch, size=(n, 4), p=arch_p)
    arch_of = np.where(cross, other_arch, main[:, None])
    codes = arch_of * SUBS_PER_ARCHIVE + within
    rows = np.arange(n)
    for j in range(4):
        take = count > j
        subs[rows[take], codes[take, j]] = True
    # number_of_authors: long tail (most papers 1-6 authors, collaborations in the hundreds).
    authors = 1 + np.floor(rng.lognormal(mean=1.0, sigma=0.85, size=n)).astype(np.int64)
    authors = np.clip(authors, 1, 300).astype(np.int32)
    # update_date: exponential growth of submissions; correlated → clusters are "eras".
    span = LAST_DAY - FIRST_DAY
    u = rng.random(n)
    growth = 2.2  # density ∝ exp(growth·t), t ∈ [0, 1]
    t = np.log1p(u * np.expm1(growth)) / growth
    if variant == "correlated":
        era = rng.normal(0.0, 0.18, size=CLUSTERS)[assign % CLUSTERS]
        t = np.clip(t + era, 0.0, 1.0)
    day = (FIRST_DAY + np.round(t * span)).astype(np.int32)
    lic = rng.choice(len(LICENSES), size=n, p=LICENSE_P).astype(np.int8)
    has_comment = rng.random(n) < HAS_COMMENT_P
    return ArxivAttributes(
        main_category=main.astype(np.int16),
        sub_categories=subs,
        sub_names=names,
        number_of_authors=authors,
        update_day=day,
        license=lic,
        has_comment=has_comment,
    )


def make_dataset(
    n: int, dim: int, n_queries: int, *, variant: str = "correlated", seed: int = 0
) -> SyntheticArxiv:
    """Base vectors, held-out query vectors (same distribution), attributes of the base."""
    vecs, assign = clustered_vectors(n + n_queries, dim, seed=seed)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    base, queries = vecs[:n], vecs[n:]
    attrs = make_attributes(assign[:n], variant=variant, seed=seed)
    return SyntheticArxiv(
        base=np.ascontiguousarray(base),
        queries=np.ascontiguousarray(queries),
        attributes=attrs,
        variant=variant,
        seed=seed,
    )
