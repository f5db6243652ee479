"""The compatibility checks: verdicts over seeds, and every report number against a direct
numpy computation (written independently here, loops and all) on the same embeddings."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from sievedb.compat_models import Encoder, GaussianClasses, model_zoo
from sievedb.compat_models import dsimplex as client_dsimplex
from sievedb_server.compat import (
    DEFAULT_THRESHOLDS,
    SimplexSpec,
    Thresholds,
    check_compatibility,
    dsimplex,
    fit_verified_adapter,
)
from sievedb_server.compat.metrics import stratified_split

SEEDS = (0, 1, 2)
SPEC = SimplexSpec(num_classes=10, dim=9)


@cache
def zoo(seed: int) -> tuple[GaussianClasses, dict[str, Encoder], np.ndarray, np.ndarray]:
    data, models = model_zoo(seed)
    x, y = data.sample(60, seed + 300)  # 600 probe items, 60 per class
    return data, models, x, y


def embeddings(seed: int, name: str) -> np.ndarray:
    _, models, x, _ = zoo(seed)
    return models[name].embed(x)


def test_dsimplex_geometry_and_client_copy_agree() -> None:
    w = dsimplex(10)
    assert w.shape == (10, 9)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0)
    g = w @ w.T
    np.testing.assert_allclose(g[~np.eye(10, dtype=bool)], -1.0 / 9, atol=1e-12)
    np.testing.assert_allclose(w.sum(0), 0.0, atol=1e-12)
    np.testing.assert_array_equal(w, client_dsimplex(10))


@pytest.mark.parametrize("seed", SEEDS)
def test_compatible_pair_is_accepted(seed: int) -> None:
    _, _, _, y = zoo(seed)
    rep = check_compatibility(
        y,
        embeddings(seed, "v2"),
        {"v1": embeddings(seed, "v1")},
        candidate_id="v2",
        simplex=SPEC,
        seed=seed,
    )
    assert rep.compatible, rep.reasons
    g = rep.generations[0]
    assert g.instance["top1_no"] > g.instance["top1_oo"]
    assert g.template["top1_no"] > g.template["top1_oo"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["learnable", "rotated", "permuted"])
def test_incompatible_models_are_rejected(seed: int, name: str) -> None:
    _, _, _, y = zoo(seed)
    rep = check_compatibility(
        y,
        embeddings(seed, name),
        {"v1": embeddings(seed, "v1")},
        candidate_id=name,
        simplex=SPEC,
        seed=seed,
    )
    assert not rep.compatible
    g = rep.generations[0]
    assert g.instance["top1_no"] < g.instance["top1_oo"]  # by a wide margin in practice
    assert any("ECC instance" in r for r in rep.reasons)
    assert rep.simplex is not None and rep.simplex[name]["centroid_nn_accuracy"] < 1.0


def test_identical_model_is_a_no_op_not_a_failure() -> None:
    _, _, _, y = zoo(0)
    old = embeddings(0, "v1")
    rep = check_compatibility(y, old, {"v1": old}, candidate_id="v1b")
    assert rep.compatible and rep.generations[0].identical


def test_every_generation_must_pass() -> None:
    _, _, _, y = zoo(0)
    rep = check_compatibility(
        y,
        embeddings(0, "v2"),
        {"v1": embeddings(0, "v1"), "odd": embeddings(0, "rotated")},
        candidate_id="v2",
    )
    assert not rep.compatible
    assert [g.passed for g in rep.generations] == [True, False]
    assert all(r.startswith("vs odd:") for r in rep.reasons)


def test_thresholds_can_be_tightened_not_loosened() -> None:
    _, _, _, y = zoo(0)
    strict = Thresholds.from_overrides({"ecc_margin": 0.5})
    rep = check_compatibility(
        y, embeddings(0, "v2"), {"v1": embeddings(0, "v1")}, thresholds=strict
    )
    assert not rep.compatible and rep.thresholds["ecc_margin"] == 0.5
    assert Thresholds.from_overrides(None) is DEFAULT_THRESHOLDS
    boot = Thresholds.from_overrides({"require_bootstrap_lower_bound": True})
    rep = check_compatibility(y, embeddings(0, "v2"), {"v1": embeddings(0, "v1")}, thresholds=boot)
    assert rep.generations[0].instance["margin_lower_5pct"] < 0.1
    assert rep.compatible == (rep.generations[0].instance["margin_lower_5pct"] > 0)
    for loose in (
        {"ecc_margin": -0.1},
        {"min_centroid_nn": 0.5},
        {"pairwise_tolerance": 0.5},
        {"require_template_ecc": False},
    ):
        with pytest.raises(ValueError):
            Thresholds.from_overrides(loose)
    with pytest.raises(ValueError):
        Thresholds.from_overrides({"nonsense": 1})


def test_structural_failures() -> None:
    _, _, _, y = zoo(0)
    old, new = embeddings(0, "v1"), embeddings(0, "v2")
    assert not check_compatibility(y, new[:, :5], {"v1": old}).compatible
    bad = new.copy()
    bad[3, 0] = np.nan
    assert "NaN" in check_compatibility(y, bad, {"v1": old}).reasons[0]
    bad = new.copy()
    bad[4] = 0.0
    assert "zero norm" in check_compatibility(y, bad, {"v1": old}).reasons[0]
    rep = check_compatibility(
        y,
        new,
        {"v1": old},
        candidate_id="v2",
        simplex_fingerprints={"v2": SPEC.fingerprint, "v1": "other"},
    )
    assert not rep.compatible and "simplex" in rep.reasons[0]


def test_stratified_split_keeps_every_class_on_both_sides() -> None:
    y = np.repeat(np.arange(5), [2, 3, 10, 11, 40])
    q = stratified_split(y, 0.5, seed=3)
    for c in range(5):
        assert 0 < q[y == c].sum() < (y == c).sum()


# ---- every number against a direct computation -------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _top1(qv: np.ndarray, yq: np.ndarray, gv: np.ndarray, yg: np.ndarray) -> float:
    hits = 0
    for v, lab in zip(qv, yq):
        d = 1.0 - gv @ v
        hits += int(yg[int(np.argmin(d))] == lab)
    return hits / len(qv)


def _map(qv: np.ndarray, yq: np.ndarray, gv: np.ndarray, yg: np.ndarray) -> float:
    aps = []
    for v, lab in zip(qv, yq):
        order = np.argsort(1.0 - gv @ v, kind="stable")
        found, precisions = 0, []
        for rank, j in enumerate(order, start=1):
            if yg[j] == lab:
                found += 1
                precisions.append(found / rank)
        if precisions:
            aps.append(sum(precisions) / len(precisions))
    return float(np.mean(aps))


def _templates(gv: np.ndarray, yg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes = np.unique(yg)
    return _unit(np.stack([gv[yg == c].mean(0) for c in classes])), classes


@pytest.mark.parametrize("name", ["v2", "rotated"])
def test_every_report_number_equals_direct_numpy(name: str) -> None:
    seed = 1
    _, _, _, y = zoo(seed)
    old_raw, new_raw = embeddings(seed, "v1"), embeddings(seed, name)
    rep = check_compatibility(
        y, new_raw, {"v1": old_raw}, candidate_id=name, simplex=SPEC, seed=seed
    )
    g = rep.generations[0]
    o, n = _unit(old_raw), _unit(new_raw)
    q = stratified_split(y, 0.5, seed)
    assert (rep.num_query, rep.num_gallery, rep.num_probe) == (q.sum(), (~q).sum(), len(y))
    oq, og, nq, ng, yq, yg = o[q], o[~q], n[q], n[~q], y[q], y[~q]
    close = {"rel": 1e-9, "abs": 1e-9}

    # C1: instance level
    for key, (qv, gv) in {"oo": (oq, og), "no": (nq, og), "nn": (nq, ng)}.items():
        assert g.instance[f"top1_{key}"] == pytest.approx(_top1(qv, yq, gv, yg), **close)
        assert g.instance[f"map_{key}"] == pytest.approx(_map(qv, yq, gv, yg), **close)
    # C1: bootstrap lower bound of the paired top-1 margin (1000 resamples, rng seed + 2)
    c_oo = np.array([yg[np.argmin(1.0 - og @ v)] == lab for v, lab in zip(oq, yq, strict=True)])
    c_no = np.array([yg[np.argmin(1.0 - og @ v)] == lab for v, lab in zip(nq, yq, strict=True)])
    rng = np.random.default_rng(seed + 2)
    margins = []
    draws = rng.integers(0, len(yq), size=(1000, len(yq)))
    for row in draws:
        margins.append(c_no[row].mean() - c_oo[row].mean())
    assert g.instance["margin_lower_5pct"] == pytest.approx(
        float(np.quantile(margins, 0.05)), **close
    )
    # C1: class-template level
    to, classes = _templates(og, yg)
    tn, _ = _templates(ng, yg)
    for key, (qv, gv) in {"oo": (oq, to), "no": (nq, to), "nn": (nq, tn)}.items():
        assert g.template[f"top1_{key}"] == pytest.approx(_top1(qv, yq, gv, classes), **close)
        assert g.template[f"map_{key}"] == pytest.approx(_map(qv, yq, gv, classes), **close)

    # C3: all |Q| x |G| pairs (fewer than max_pairs)
    same_ok = diff_ok = n_same = n_diff = 0
    s_no, s_oo, d_no, d_oo = [], [], [], []
    for i in range(len(nq)):
        dno = 1.0 - og @ nq[i]
        doo = 1.0 - og @ oq[i]
        same = yg == yq[i]
        same_ok += int((dno[same] <= doo[same]).sum())
        diff_ok += int((dno[~same] >= doo[~same]).sum())
        n_same += int(same.sum())
        n_diff += int((~same).sum())
        s_no += list(dno[same])
        s_oo += list(doo[same])
        d_no += list(dno[~same])
        d_oo += list(doo[~same])
    pw = g.pairwise
    assert pw["num_pairs"] == len(nq) * len(og)
    assert pw["same_rate"] == pytest.approx(same_ok / n_same, **close)
    assert pw["diff_rate"] == pytest.approx(diff_ok / n_diff, **close)
    for k, vals in {
        "same_mean_no": s_no,
        "same_mean_oo": s_oo,
        "diff_mean_no": d_no,
        "diff_mean_oo": d_oo,
    }.items():
        assert pw[k] == pytest.approx(float(np.mean(vals)), **close)

    # C4: centroids over all probe items
    mn, cls = _templates(n, y)
    mo, _ = _templates(o, y)
    s = mn @ mo.T
    assert g.centroids["mean_cosine"] == pytest.approx(float(np.trace(s)) / len(cls), **close)
    assert g.centroids["min_cosine"] == pytest.approx(float(np.diag(s).min()), **close)
    assert g.centroids["mean_other_cosine"] == pytest.approx(
        (s.sum() - np.trace(s)) / (len(cls) ** 2 - len(cls)), **close
    )
    assert g.centroids["nn_accuracy"] == pytest.approx(
        float(np.mean([np.argmax(s[c]) == c for c in range(len(cls))])), **close
    )

    # C5: simplex alignment (identity class->vertex map)
    w = dsimplex(10)
    for model_id, emb, mu in ((name, n, mn), ("v1", o, mo)):
        sx = rep.simplex[model_id]  # type: ignore[index]
        assert sx["centroid_cosine"] == pytest.approx(
            float(np.mean([mu[c] @ w[c] for c in cls])), **close
        )
        assert sx["instance_cosine"] == pytest.approx(
            float(np.mean([emb[i] @ w[y[i]] for i in range(len(y))])), **close
        )
        assert sx["nearest_vertex_accuracy"] == pytest.approx(
            float(np.mean(np.argmax(emb @ w.T, 1) == y)), **close
        )
        assert sx["centroid_nn_accuracy"] == pytest.approx(
            float(np.mean(np.argmax(mu @ w.T, 1) == cls)), **close
        )

    # C6: Procrustes on the paired items: argmin_R ||n R - o||, R orthogonal
    u, _, vt = np.linalg.svd(n.T @ o)
    r = u @ vt
    assert g.rotation["deviation"] == pytest.approx(
        float(np.sqrt(((r - np.eye(9)) ** 2).sum() / 18)), **close
    )
    assert g.rotation["top1_no_rotated"] == pytest.approx(_top1(_unit(nq @ r), yq, og, yg), **close)

    # C7: negative flips and paired drift
    flips = 0
    for v_o, v_n, lab in zip(oq, nq, yq):
        ok_old = yg[np.argmin(1.0 - og @ v_o)] == lab
        ok_new = yg[np.argmin(1.0 - og @ v_n)] == lab
        flips += int(ok_old and not ok_new)
    assert g.negative_flip_rate == pytest.approx(flips / len(oq), **close)
    assert g.paired_cosine == pytest.approx(float(np.mean([a @ b for a, b in zip(n, o)])), **close)

    # C8: mixed index with the documented permutation (seed + 1)
    order = np.random.default_rng(seed + 1).permutation(len(og))
    for rho in (0.0, 0.5, 1.0):
        gal = og.copy()
        take = order[: round(rho * len(og))]
        gal[take] = ng[take]
        assert g.mixed_index[f"{rho:g}"] == pytest.approx(_top1(nq, yq, gal, yg), **close)

    assert not math.isnan(pw["same_rate"])
    assert rep.to_dict()["generations"][0]["instance"] == g.instance


@pytest.mark.parametrize("name", ["rotated", "permuted"])
def test_procrustes_adapter_repairs_a_rotation_on_held_out_items(name: str) -> None:
    seed = 0
    _, _, _, y = zoo(seed)
    new, old = embeddings(seed, name), embeddings(seed, "v1")
    adapter, rep, fit = fit_verified_adapter(
        y, new, {"v1": old}, "v1", candidate_id=name, seed=seed
    )
    assert rep.compatible, rep.reasons
    assert rep.num_probe == int((~fit).sum()) and 0 < fit.sum() < len(y)
    m = adapter.matrix.astype(np.float64)
    np.testing.assert_allclose(m @ m.T, np.eye(9), atol=1e-5)  # orthogonal
    np.testing.assert_allclose(adapter.apply(new), new @ adapter.matrix, rtol=1e-5, atol=1e-6)
    # without the adapter the same held-out items are rejected
    assert not check_compatibility(y[~fit], new[~fit], {"v1": old[~fit]}).compatible


def test_lowrank_adapter_fits() -> None:
    _, _, _, y = zoo(0)
    new, old = embeddings(0, "v2"), embeddings(0, "v1")
    adapter, rep, _ = fit_verified_adapter(y, new, {"v1": old}, "v1", kind="lowrank")
    assert adapter.kind == "lowrank" and adapter.matrix.shape == (9, 9)
    assert rep.generations[0].instance["top1_no"] > 0.5
