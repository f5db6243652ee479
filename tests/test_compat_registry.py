"""Model registry, probe set, check and promote, in process (the engine API)."""

from __future__ import annotations

import numpy as np
import pytest
from sievedb.compat_models import model_zoo
from sievedb_server.compat import SimplexSpec, Thresholds
from sievedb_server.core.engine import Engine
from sievedb_server.core.models import MODEL_FIELD, ModelSpec, registry_of
from sievedb_server.core.types import CollectionSpec, SearchParams
from sievedb_server.errors import (
    AlreadyExists,
    IncompatibleModel,
    InvalidArgument,
    ModelMismatch,
    ModelNotFound,
)
from sievedb_server.filters.model import Filter, Match

SPEC = SimplexSpec(10, 9)


@pytest.fixture(scope="module")
def zoo() -> tuple:
    data, models = model_zoo(0)
    probe_x, probe_y = data.sample(40, 300)
    gallery_x, gallery_y = data.sample(30, 400)
    return models, probe_x, probe_y, gallery_x, gallery_y


def setup(engine: Engine, zoo: tuple, name: str = "items") -> None:
    models, px, py, gx, gy = zoo
    engine.create_collection(CollectionSpec(name, 9))
    engine.models.set_probe_set(name, [f"p{i}" for i in range(len(py))], py.tolist())
    engine.models.register(name, ModelSpec("v1", 9, simplex=SPEC), models["v1"].embed(px))
    engine.upsert(
        name, list(range(len(gy))), models["v1"].embed(gx), [{"label": int(c)} for c in gy]
    )


def storage_counters(engine: Engine, name: str) -> tuple:
    coll = engine._get(name)
    with coll.store.read() as txn:
        vec = txn.stat(coll.store.db["vectors"])
        raw = b"".join(bytes(v) for _, v in txn.cursor(db=coll.store.db["vectors"]))
    return coll.watermark, vec["entries"], vec["leaf_pages"], hash(raw), coll.live_count


def test_collection_without_registry_keeps_todays_behaviour(engine: Engine) -> None:
    engine.create_collection(CollectionSpec("plain", 3))
    engine.upsert("plain", [1], np.ones((1, 3), np.float32))
    assert engine.search("plain", np.ones(3, np.float32), SearchParams(k=1)).hits[0].id == 1
    with pytest.raises(ModelMismatch):
        engine.search("plain", np.ones(3, np.float32), SearchParams(k=1), model="v1")
    with pytest.raises(ModelMismatch):
        engine.upsert("plain", [2], np.ones((1, 3), np.float32), model="v1")


def test_writes_record_their_model_and_it_is_filterable(engine: Engine, zoo: tuple) -> None:
    setup(engine, zoo)
    pts = engine.get("items", [0, 1])
    assert all(p.attributes[MODEL_FIELD] == "v1" for p in pts)
    n = engine.count("items", Filter(must=(Match(MODEL_FIELD, "v1"),)))
    assert n == len(zoo[4])
    _models, *_ = zoo
    recs, default = engine.models.list_models("items")
    assert default == "v1" and [r.state for r in recs] == ["active"]


def test_unregistered_and_unpromoted_models_are_model_mismatch(engine: Engine, zoo: tuple) -> None:
    setup(engine, zoo)
    models, px, *_ = zoo
    q = models["v2"].embed(px[:1])[0]
    with pytest.raises(ModelMismatch):
        engine.search("items", q, SearchParams(k=3), model="nope")
    engine.models.register("items", ModelSpec("v2", 9, simplex=SPEC), models["v2"].embed(px))
    with pytest.raises(ModelMismatch, match="not promoted"):
        engine.search("items", q, SearchParams(k=3), model="v2")
    with pytest.raises(ModelMismatch):
        engine.upsert("items", ["new"], q[None, :], model="v2")
    with pytest.raises(ModelNotFound):
        engine.models.check("items", "nope")
    with pytest.raises(AlreadyExists):
        engine.models.register("items", ModelSpec("v2", 9), None)


def test_compatible_model_is_promoted_without_rewriting_vectors(engine: Engine, zoo: tuple) -> None:
    setup(engine, zoo)
    models, px, py, gx, _gy = zoo
    before = storage_counters(engine, "items")
    engine.models.register("items", ModelSpec("v2", 9, simplex=SPEC), models["v2"].embed(px))
    report = engine.models.check("items", "v2")
    assert report.compatible, report.reasons
    assert [g.model_id for g in report.generations] == ["v1"]
    rec, _ = engine.models.promote("items", "v2")
    assert rec.state == "promoted" and rec.adapter is None
    assert storage_counters(engine, "items") == before  # promotion wrote no vector
    # v2 queries are served against the v1 gallery at once, and beat v1's own queries
    qx, qy = px[:100], py[:100]

    def acc(model: str, emb: np.ndarray) -> float:
        res = engine.search_batch(
            "items", emb, SearchParams(k=1, with_attributes=True), model=model
        )
        return float(np.mean([r.hits[0].attributes["label"] == y for r, y in zip(res, qy)]))

    assert acc("v2", models["v2"].embed(qx)) >= acc("", models["v1"].embed(qx)) - 0.02
    # new items embedded by v2 join the same index, tagged
    engine.upsert("items", ["fresh"], models["v2"].embed(gx[:1]), model="v2")
    assert engine.get("items", ["fresh"])[0].attributes[MODEL_FIELD] == "v2"
    assert engine.count("items", Filter(must=(Match(MODEL_FIELD, "v2"),))) == 1
    # the registry survives a restart
    engine.close()
    again = Engine(engine.data_dir)
    try:
        recs, _default = again.models.list_models("items")
        assert [(r.spec.id, r.state) for r in recs] == [("v1", "active"), ("v2", "promoted")]
        assert recs[0].spec.simplex == SPEC
        # v2 now has vectors in the gallery: a third model is checked against both generations
        again.models.register(
            "items", ModelSpec("v3", 9, simplex=SPEC), models["rotated"].embed(px)
        )
        assert [g.model_id for g in again.models.check("items", "v3").generations] == ["v1", "v2"]
    finally:
        again.close()


@pytest.mark.parametrize("name", ["rotated", "learnable", "permuted"])
def test_incompatible_model_is_refused_with_the_report(
    engine: Engine, zoo: tuple, name: str
) -> None:
    setup(engine, zoo)
    models, px, *_ = zoo
    engine.models.register("items", ModelSpec(name, 9, simplex=SPEC), models[name].embed(px))
    with pytest.raises(IncompatibleModel) as err:
        engine.models.promote("items", name)
    assert not err.value.report.compatible  # type: ignore[attr-defined]
    assert registry_of(engine._get("items")).get(name).state == "candidate"


def test_adapter_promotion_verifies_on_held_out_probes(engine: Engine, zoo: tuple) -> None:
    setup(engine, zoo)
    models, px, py, _gx, _gy = zoo
    engine.models.register("items", ModelSpec("rot", 9), models["rotated"].embed(px))
    before = storage_counters(engine, "items")
    rec, report = engine.models.promote("items", "rot", adapter="procrustes")
    assert rec.adapter is not None and report.compatible
    assert report.num_probe < len(py)  # checked on the held-out part only
    assert storage_counters(engine, "items") == before
    qx, qy = px[:100], py[:100]
    res = engine.search_batch(
        "items", models["rotated"].embed(qx), SearchParams(k=1, with_attributes=True), model="rot"
    )
    assert np.mean([r.hits[0].attributes["label"] == y for r, y in zip(res, qy)]) > 0.6


def test_thresholds_and_probe_validation(engine: Engine, zoo: tuple) -> None:
    setup(engine, zoo)
    models, px, *_ = zoo
    engine.models.register("items", ModelSpec("v2", 9, simplex=SPEC), None)
    with pytest.raises(InvalidArgument, match="no probe embeddings"):
        engine.models.check("items", "v2")
    with pytest.raises(InvalidArgument):
        engine.models.check("items", "v2", models["v2"].embed(px[:5]))
    assert engine.models.check("items", "v2", models["v2"].embed(px)).compatible
    with pytest.raises(IncompatibleModel):
        engine.models.promote("items", "v2", thresholds=Thresholds(ecc_margin=0.9))
    with pytest.raises(AlreadyExists):
        engine.models.set_probe_set("items", ["a", "b"], [0, 1])
