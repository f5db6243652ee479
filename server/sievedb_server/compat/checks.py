"""Compatibility checks of a candidate embedding model against the stored generations.

Pure numpy, no grpc. Input: a labelled probe set embedded by the candidate ("new") and by every
model generation still present in the gallery ("old", paired item for item). Output: a
`CompatReport` with every number and a verdict with reasons. Definitions follow
`reference/compat.md` (BCT, Shen et al. 2020; d-Simplex stationarity, Biondi/Pernici et al.):

C0 structural    same dim, finite, non-zero norms, same probe items, same simplex fingerprint
C1/C2 ECC        per generation k: M(N_Q, O_G) > M(O_Q, O_G) + margin, M = top-1 (gated) and
                 mAP (reported), at instance level and with G collapsed to class templates;
                 plus the 5% bootstrap lower bound of the paired top-1 margin (reported;
                 gated with `require_bootstrap_lower_bound`)
C3 pairwise      over pairs (i in Q, j in G): same class  => d(n_i,o_j) <= d(o_i,o_j),
                 different class => d(n_i,o_j) >= d(o_i,o_j); rates per pair, gate on the means
C4 centroids     s_c = s(mu_c^new, mu_c^old); centroid-NN accuracy (gated, default = 1)
C5 simplex       where declared: centroid->vertex NN, mean centroid/instance cosine to vertex
C6 rotation      R* = U V^T from SVD(N^T O) on paired items; dev = ||R* - I||_F / sqrt(2d);
                 top-1 ECC after applying R* to the new queries
C7 regressions   negative flip rate NFR = mean_q [old/old correct and new/old wrong]; drift
C8 mixed index   top-1 of new queries on a gallery with a fraction rho re-embedded by new

Default gate (strict ECC): C0 and, for every generation, C1 instance and template top-1 strictly
above old/old, C3 means within a relative tolerance of 5% (`pairwise_tolerance`: on the reference
recipe a compatible pair that beats old/old retrieval by 2-6 points misses the exact same-class
mean inequality by <1% in 2 of 5 seeds, while incompatible ones miss it by >100%), C4 centroid-NN >= 1.0, and C5 centroid->vertex NN >= 1.0 when a simplex is
declared. A candidate identical to a generation is a no-op for that generation (it ties exactly,
which a strict criterion would otherwise call a failure). Callers may tighten, never loosen.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sievedb_server.compat import metrics as m
from sievedb_server.compat.simplex import SimplexSpec

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CompatReport",
    "GenerationReport",
    "ProbeSet",
    "Thresholds",
    "check_compatibility",
]

F64 = NDArray[np.float64]
MIXED_RHOS = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class Thresholds:
    """The gate. Defaults are the documented strict criterion; `tighten` refuses to loosen."""

    ecc_margin: float = 0.0  # M_no - M_oo must be > margin (top-1)
    require_template_ecc: bool = True
    # Gate also on the 5% bootstrap lower bound of the top-1 margin being > 0 (off by default:
    # with a few hundred probe queries it rejects genuinely compatible pairs whose margin is small).
    require_bootstrap_lower_bound: bool = False
    require_pairwise_means: bool = True
    pairwise_tolerance: float = 0.05  # relative slack on the C3 means (see below)
    min_centroid_nn: float = 1.0
    min_centroid_cosine: float = -1.0  # mean same-class centroid cosine
    min_simplex_centroid_nn: float = 1.0
    max_negative_flip_rate: float = 1.0

    def is_at_least_as_strict_as(self, other: Thresholds) -> bool:
        return (
            self.ecc_margin >= other.ecc_margin
            and self.require_template_ecc >= other.require_template_ecc
            and self.require_bootstrap_lower_bound >= other.require_bootstrap_lower_bound
            and self.require_pairwise_means >= other.require_pairwise_means
            and self.pairwise_tolerance <= other.pairwise_tolerance
            and self.min_centroid_nn >= other.min_centroid_nn
            and self.min_centroid_cosine >= other.min_centroid_cosine
            and self.min_simplex_centroid_nn >= other.min_simplex_centroid_nn
            and self.max_negative_flip_rate <= other.max_negative_flip_rate
        )

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None) -> Thresholds:
        """Defaults with `overrides` applied; ValueError if that loosens any default."""
        if not overrides:
            return DEFAULT_THRESHOLDS
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"unknown thresholds {sorted(unknown)}; known: {sorted(names)}")
        out = dataclasses.replace(DEFAULT_THRESHOLDS, **overrides)
        if not out.is_at_least_as_strict_as(DEFAULT_THRESHOLDS):
            raise ValueError("thresholds may be tightened, not loosened, relative to the defaults")
        return out


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class ProbeSet:
    """Labelled probe items: labels plus each model's embeddings, paired row for row."""

    labels: NDArray[np.int64]
    embeddings: dict[str, NDArray[np.float32]]


@dataclass
class GenerationReport:
    model_id: str
    identical: bool
    instance: dict[str, float]  # top1_oo/no/nn, map_oo/no/nn
    template: dict[str, float]  # same at class-template level
    pairwise: dict[str, float]
    centroids: dict[str, float]
    rotation: dict[str, float]
    negative_flip_rate: float
    paired_cosine: float
    mixed_index: dict[str, float]
    passed: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class CompatReport:
    candidate: str
    compatible: bool
    reasons: list[str]
    thresholds: dict[str, Any]
    metric: str
    seed: int
    num_probe: int
    num_query: int
    num_gallery: int
    structural: dict[str, Any]
    simplex: dict[str, dict[str, float]] | None
    generations: list[GenerationReport]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _ecc(
    nq: F64, oq: F64, og: F64, ng: F64, yq: NDArray[np.int64], yg: NDArray[np.int64], metric: str
) -> dict[str, float]:
    d_oo, d_no, d_nn = (
        m.distances(oq, og, metric),
        m.distances(nq, og, metric),
        m.distances(nq, ng, metric),
    )
    out = {}
    for name, d in (("oo", d_oo), ("no", d_no), ("nn", d_nn)):
        out[f"top1_{name}"] = float(m.top1_correct(d, yq, yg).mean())
        out[f"map_{name}"] = float(np.nanmean(m.average_precision(d, yq, yg)))
    return out


def _template_ecc(
    nq: F64, oq: F64, og: F64, ng: F64, yq: NDArray[np.int64], yg: NDArray[np.int64], metric: str
) -> dict[str, float]:
    to, classes = m.templates(og, yg, metric)
    tn, _ = m.templates(ng, yg, metric)
    return _ecc(nq, oq, to, tn, yq, classes, metric)


def _pairwise(
    nq: F64,
    oq: F64,
    og: F64,
    yq: NDArray[np.int64],
    yg: NDArray[np.int64],
    metric: str,
    max_pairs: int,
    seed: int,
) -> dict[str, float]:
    nqi, ngj = len(nq), len(og)
    if nqi * ngj <= max_pairs:
        ii, jj = np.divmod(np.arange(nqi * ngj), ngj)
    else:
        rng = np.random.default_rng(seed)
        ii, jj = rng.integers(0, nqi, max_pairs), rng.integers(0, ngj, max_pairs)
    d_no = m.pair_distances(nq[ii], og[jj], metric)
    d_oo = m.pair_distances(oq[ii], og[jj], metric)
    same = yq[ii] == yg[jj]
    diff = ~same
    out = {
        "num_pairs": float(len(ii)),
        "same_rate": float((d_no[same] <= d_oo[same]).mean()) if same.any() else float("nan"),
        "diff_rate": float((d_no[diff] >= d_oo[diff]).mean()) if diff.any() else float("nan"),
        "same_mean_no": float(d_no[same].mean()) if same.any() else float("nan"),
        "same_mean_oo": float(d_oo[same].mean()) if same.any() else float("nan"),
        "diff_mean_no": float(d_no[diff].mean()) if diff.any() else float("nan"),
        "diff_mean_oo": float(d_oo[diff].mean()) if diff.any() else float("nan"),
    }
    out["same_holds"] = float(out["same_mean_no"] <= out["same_mean_oo"])
    out["diff_holds"] = float(out["diff_mean_no"] >= out["diff_mean_oo"])
    return out


def pairwise_means_hold(pw: dict[str, float], tolerance: float) -> bool:
    """C3 on average, with relative slack: same <= oo*(1+tol), different >= oo*(1-tol)."""
    return bool(
        pw["same_mean_no"] <= pw["same_mean_oo"] * (1.0 + tolerance)
        and pw["diff_mean_no"] >= pw["diff_mean_oo"] * (1.0 - tolerance)
    )


def _centroids(new: F64, old: F64, y: NDArray[np.int64]) -> dict[str, float]:
    classes = np.unique(y)
    mn = m.class_means(m.normalise(new), y, classes, "cosine")
    mo = m.class_means(m.normalise(old), y, classes, "cosine")
    s = mn @ mo.T
    off = s[~np.eye(len(classes), dtype=bool)]
    return {
        "mean_cosine": float(np.diag(s).mean()),
        "min_cosine": float(np.diag(s).min()),
        "mean_other_cosine": float(off.mean()) if off.size else float("nan"),
        "nn_accuracy": float((np.argmax(s, axis=1) == np.arange(len(classes))).mean()),
    }


BOOTSTRAP_RESAMPLES = 1000


def bootstrap_lower(
    correct_no: NDArray[np.bool_], correct_oo: NDArray[np.bool_], seed: int
) -> float:
    """5% quantile of the paired top-1 margin M_no - M_oo over query resamples (seed + 2)."""
    rng = np.random.default_rng(seed + 2)
    idx = rng.integers(0, len(correct_no), size=(BOOTSTRAP_RESAMPLES, len(correct_no)))
    margins = correct_no[idx].mean(axis=1) - correct_oo[idx].mean(axis=1)
    return float(np.quantile(margins, 0.05))


def procrustes(source: F64, target: F64) -> F64:
    """Orthogonal R minimising ||source R - target||_F: R = U V^T, U S V^T = svd(source^T target)."""
    u, _, vt = np.linalg.svd(source.T @ target)
    out: F64 = u @ vt
    return out


def _rotation(
    new: F64,
    old: F64,
    q: NDArray[np.bool_],
    yq: NDArray[np.int64],
    yg: NDArray[np.int64],
    metric: str,
) -> dict[str, float]:
    r = procrustes(new, old)
    d = new.shape[1]
    nq_rot = m.prepare(new[q] @ r, metric)
    top1 = m.top1_correct(m.distances(nq_rot, old[~q], metric), yq, yg)
    return {
        "deviation": float(np.linalg.norm(r - np.eye(d)) / np.sqrt(2 * d)),
        "top1_no_rotated": float(top1.mean()),
    }


def _simplex(emb: F64, y: NDArray[np.int64], spec: SimplexSpec) -> dict[str, float]:
    w = spec.prototypes()
    x = m.normalise(emb)
    v = spec.vertex_of(y)
    classes = np.unique(y)
    mu = m.class_means(x, y, classes, "cosine")
    vc = spec.vertex_of(classes)
    return {
        "centroid_cosine": float((mu * w[vc]).sum(1).mean()),
        "instance_cosine": float((x * w[v]).sum(1).mean()),
        "nearest_vertex_accuracy": float((np.argmax(x @ w.T, axis=1) == v).mean()),
        "centroid_nn_accuracy": float((np.argmax(mu @ w.T, axis=1) == vc).mean()),
    }


def _mixed(
    nq: F64, ng: F64, og: F64, yq: NDArray[np.int64], yg: NDArray[np.int64], metric: str, seed: int
) -> dict[str, float]:
    rng = np.random.default_rng(seed + 1)
    order = rng.permutation(len(og))
    out = {}
    for rho in MIXED_RHOS:
        gal = og.copy()
        take = order[: round(rho * len(og))]
        gal[take] = ng[take]
        out[f"{rho:g}"] = float(m.top1_correct(m.distances(nq, gal, metric), yq, yg).mean())
    return out


def _structural(
    labels: NDArray[np.int64], new: NDArray[Any], gens: dict[str, NDArray[Any]], metric: str
) -> tuple[dict[str, Any], list[str]]:
    reasons: list[str] = []
    info: dict[str, Any] = {"dim": int(new.shape[1]) if new.ndim == 2 else -1}
    if metric not in m.METRICS:
        reasons.append(f"unknown metric {metric!r}")
    if new.ndim != 2 or len(new) != len(labels):
        reasons.append("candidate embeddings must be a (num_probe, dim) matrix")
    else:
        if not np.isfinite(new).all():
            reasons.append("candidate embeddings contain NaN or Inf")
        zero = int((np.linalg.norm(new, axis=1) == 0).sum())
        info["zero_norm"] = zero
        if zero:
            reasons.append(f"{zero} candidate embeddings have zero norm")
    for gid, old in gens.items():
        if old.shape != new.shape:
            reasons.append(f"generation {gid!r} has shape {old.shape}, candidate {new.shape}")
    counts = np.unique(labels, return_counts=True)[1]
    info["num_classes"] = len(counts)
    if len(counts) < 2 or counts.min() < 2:
        reasons.append("the probe set needs at least 2 classes with at least 2 items each")
    info["ok"] = not reasons
    return info, reasons


def check_compatibility(
    labels: NDArray[Any],
    candidate: NDArray[Any],
    generations: dict[str, NDArray[Any]],
    *,
    candidate_id: str = "candidate",
    metric: str = "cosine",
    simplex: SimplexSpec | None = None,
    simplex_fingerprints: dict[str, str] | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    query_fraction: float = 0.5,
    max_pairs: int = 1_000_000,
    seed: int = 0,
) -> CompatReport:
    """Run every check of `candidate` against each generation; see the module docstring.

    `simplex_fingerprints` maps model id -> declared simplex fingerprint ("" = none) for the
    candidate and the generations; any disagreement with the candidate's is a structural failure.
    """
    y = np.asarray(labels, dtype=np.int64)
    new_raw = np.asarray(candidate, dtype=np.float64)
    gens_raw = {k: np.asarray(v, dtype=np.float64) for k, v in generations.items()}
    structural, reasons = _structural(y, new_raw, gens_raw, metric)
    if not gens_raw:
        reasons.append("no generation to compare against")
    q = m.stratified_split(y, query_fraction, seed)
    base: dict[str, Any] = {
        "candidate": candidate_id,
        "thresholds": dataclasses.asdict(thresholds),
        "metric": metric,
        "seed": seed,
        "num_probe": len(y),
        "num_query": int(q.sum()),
        "num_gallery": int((~q).sum()),
        "structural": structural,
    }
    if reasons:  # nothing can be measured
        structural["ok"] = False
        return CompatReport(compatible=False, reasons=reasons, simplex=None, generations=[], **base)
    # A different declared interface fails the gate, but every number is still reported.
    fps = simplex_fingerprints or {}
    cand_fp = fps.get(candidate_id, "")
    for gid in gens_raw:
        if gid in fps and fps[gid] != cand_fp:
            structural["ok"] = False
            reasons.append(
                f"declared simplex differs from generation {gid!r} "
                f"({cand_fp or 'none'} vs {fps[gid] or 'none'})"
            )

    simplex_report: dict[str, dict[str, float]] | None = None
    if simplex is not None and simplex.dim == new_raw.shape[1]:
        simplex_report = {candidate_id: _simplex(new_raw, y, simplex)}
        for gid, old in gens_raw.items():
            simplex_report[gid] = _simplex(old, y, simplex)
        sc = simplex_report[candidate_id]["centroid_nn_accuracy"]
        if sc < thresholds.min_simplex_centroid_nn:
            reasons.append(
                f"simplex: candidate class centroids reach their declared vertex for "
                f"{sc:.3f} of classes < {thresholds.min_simplex_centroid_nn}"
            )

    new = m.prepare(new_raw, metric)
    yq, yg = y[q], y[~q]
    gen_reports = []
    for gid, old_raw in gens_raw.items():
        old = m.prepare(old_raw, metric)
        identical = bool(np.array_equal(old_raw, new_raw))
        nq, ng, oq, og = new[q], new[~q], old[q], old[~q]
        inst = _ecc(nq, oq, og, ng, yq, yg, metric)
        tmpl = _template_ecc(nq, oq, og, ng, yq, yg, metric)
        pw = _pairwise(nq, oq, og, yq, yg, metric, max_pairs, seed)
        cen = _centroids(new_raw, old_raw, y)
        rot = _rotation(new, old, q, yq, yg, metric)
        c_oo = m.top1_correct(m.distances(oq, og, metric), yq, yg)
        c_no = m.top1_correct(m.distances(nq, og, metric), yq, yg)
        nfr = float((c_oo & ~c_no).mean())
        inst["margin_lower_5pct"] = bootstrap_lower(c_no, c_oo, seed)
        paired = float((m.normalise(new_raw) * m.normalise(old_raw)).sum(1).mean())
        mixed = _mixed(nq, ng, og, yq, yg, metric, seed)
        why: list[str] = []
        if not identical:
            t = thresholds
            if not inst["top1_no"] > inst["top1_oo"] + t.ecc_margin:
                why.append(
                    f"ECC instance top-1: new->old {inst['top1_no']:.3f} does not beat "
                    f"old->old {inst['top1_oo']:.3f} (+{t.ecc_margin})"
                )
            if t.require_bootstrap_lower_bound and not inst["margin_lower_5pct"] > 0:
                why.append(
                    "ECC instance top-1 margin: 5% bootstrap lower bound "
                    f"{inst['margin_lower_5pct']:.3f} is not above 0"
                )
            if t.require_template_ecc and not tmpl["top1_no"] > tmpl["top1_oo"] + t.ecc_margin:
                why.append(
                    f"ECC class-template top-1: new->old {tmpl['top1_no']:.3f} does not "
                    f"beat old->old {tmpl['top1_oo']:.3f} (+{t.ecc_margin})"
                )
            if t.require_pairwise_means and not pairwise_means_hold(pw, t.pairwise_tolerance):
                why.append(
                    f"pairwise inequalities fail on average (tolerance {t.pairwise_tolerance}; same-class "
                    f"{pw['same_mean_no']:.3f} vs {pw['same_mean_oo']:.3f}, different-class "
                    f"{pw['diff_mean_no']:.3f} vs {pw['diff_mean_oo']:.3f})"
                )
            if cen["nn_accuracy"] < t.min_centroid_nn:
                why.append(f"centroid-NN accuracy {cen['nn_accuracy']:.3f} < {t.min_centroid_nn}")
            if cen["mean_cosine"] < t.min_centroid_cosine:
                why.append(
                    f"mean centroid cosine {cen['mean_cosine']:.3f} < {t.min_centroid_cosine}"
                )
            if nfr > t.max_negative_flip_rate:
                why.append(f"negative flip rate {nfr:.3f} > {t.max_negative_flip_rate}")
        gen_reports.append(
            GenerationReport(
                model_id=gid,
                identical=identical,
                instance=inst,
                template=tmpl,
                pairwise=pw,
                centroids=cen,
                rotation=rot,
                negative_flip_rate=nfr,
                paired_cosine=paired,
                mixed_index=mixed,
                passed=not why,
                reasons=why,
            )
        )
        reasons.extend(f"vs {gid}: {r}" for r in why)
    return CompatReport(
        compatible=not reasons,
        reasons=reasons,
        simplex=simplex_report,
        generations=gen_reports,
        **base,
    )
