"""The model registry through a real gRPC server: RPCs, client methods, status codes, and
congruence of the report with the in-process engine."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from sievedb import Client
from sievedb.compat_models import model_zoo
from sievedb.errors import IncompatibleModel, InvalidArgument, ModelMismatch
from sievedb_server.core.engine import Engine


@pytest.fixture(scope="module")
def zoo() -> tuple:
    data, models = model_zoo(1)
    px, py = data.sample(40, 301)
    gx, gy = data.sample(20, 401)
    return models, px, py, gx, gy


def load(db: Client, zoo: tuple) -> None:
    models, px, py, gx, gy = zoo
    db.create_collection("items", dim=9)
    assert db.set_probe_set("items", [f"p{i}" for i in range(len(py))], py) == len(py)
    info = db.register_model(
        "items", "v1", 9, probe_vectors=models["v1"].embed(px), simplex=(10, 9)
    )
    assert (info.state, info.is_default, info.simplex) == ("active", True, (10, 9, ()))
    db.upsert(
        "items", list(range(len(gy))), models["v1"].embed(gx), [{"label": int(c)} for c in gy]
    )


def test_register_check_promote_and_query(server: tuple[Client, Engine], zoo: tuple) -> None:
    db, engine = server
    models, px, py, gx, _gy = zoo
    load(db, zoo)
    db.register_model("items", "v2", 9, probe_vectors=models["v2"].embed(px), simplex=(10, 9))
    with pytest.raises(ModelMismatch) as err:
        db.search("items", models["v2"].embed(px[:1])[0], k=1, model="v2")
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.reason == "MODEL_MISMATCH"
    check = db.check_model("items", "v2")
    assert check.compatible, check.reasons
    # congruence: the remote report equals the in-process one, number for number
    local = engine.models.check("items", "v2").to_dict()
    assert check.report["generations"][0]["instance"] == local["generations"][0]["instance"]
    assert check.report["generations"][0]["pairwise"] == local["generations"][0]["pairwise"]
    info, _ = db.promote_model("items", "v2")
    assert info.state == "promoted"
    res = db.search_batch("items", models["v2"].embed(px), k=1, model="v2")
    acc = np.mean([r.hits[0].attributes["label"] == y for r, y in zip(res, py, strict=True)])
    assert acc > 0.6  # v2 queries served against the v1 gallery
    db.upsert("items", ["n1"], models["v2"].embed(gx[:1]), model="v2")
    assert db.count("items", filter='_model == "v2"') == 1
    assert db.search("items", models["v2"].embed(gx[:1])[0], k=1, model="v2").hits[0].id == "n1"
    assert [m.id for m in db.list_models("items")] == ["v1", "v2"]


def test_incompatible_is_refused_then_adapter(server: tuple[Client, Engine], zoo: tuple) -> None:
    db, _ = server
    models, px, *_ = zoo
    load(db, zoo)
    db.register_model("items", "rot", 9, probe_vectors=models["rotated"].embed(px))
    check = db.check_model("items", "rot")
    assert not check.compatible and check.report["generations"][0]["rotation"]["deviation"] > 0.5
    with pytest.raises(IncompatibleModel) as err:
        db.promote_model("items", "rot")
    assert err.value.reason == "INCOMPATIBLE_MODEL"
    info, verified = db.promote_model("items", "rot", adapter="procrustes")
    assert info.adapter == "procrustes" and verified.compatible
    with pytest.raises(InvalidArgument):
        db.check_model("items", "rot", thresholds={"ecc_margin": -1})


def test_cli_model_commands(
    server_handle: tuple, engine: Engine, zoo: tuple, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sievedb.cli import main

    _, port = server_handle
    target = ["--target", f"127.0.0.1:{port}"]
    models, px, py, gx, gy = zoo
    with Client(f"127.0.0.1:{port}") as db:
        db.create_collection("items", dim=9)
        db.upsert("items", list(range(len(gy))), models["v1"].embed(gx))
    np.save(tmp_path / "labels.npy", py)
    for name in ("v1", "v2", "rotated"):
        np.save(tmp_path / f"{name}.npy", models[name].embed(px))
    assert (
        main(["model", *target, "probe-set", "items", "--labels", str(tmp_path / "labels.npy")])
        == 0
    )
    for name in ("v1", "v2", "rotated"):
        assert (
            main(
                [
                    "model",
                    *target,
                    "register",
                    "items",
                    name,
                    "--probe-vectors",
                    str(tmp_path / f"{name}.npy"),
                    "--simplex",
                    "10",
                ]
            )
            == 0
        )
    capsys.readouterr()
    assert main(["model", *target, "check", "items", "v2"]) == 0
    out = capsys.readouterr().out
    assert "COMPATIBLE" in out and "ECC top-1" in out and "vs v1: pass" in out
    assert main(["model", *target, "check", "items", "rotated"]) == 2
    assert "INCOMPATIBLE" in capsys.readouterr().out
    assert main(["model", *target, "promote", "items", "rotated"]) == 1
    assert "INCOMPATIBLE_MODEL" in capsys.readouterr().err
    assert main(["model", *target, "promote", "items", "v2"]) == 0
    assert "no vector rewritten" in capsys.readouterr().out
    assert main(["model", *target, "list", "items"]) == 0
    out = capsys.readouterr().out
    assert "active (default)" in out and "promoted" in out and "candidate" in out
    np.save(tmp_path / "q.npy", models["v2"].embed(gx[:1]))
    assert (
        main(
            [
                "query",
                "items",
                "--vector-file",
                str(tmp_path / "q.npy"),
                "--k",
                "1",
                "--model",
                "v2",
                *target,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "query",
                "items",
                "--vector-file",
                str(tmp_path / "q.npy"),
                "--k",
                "1",
                "--model",
                "rotated",
                *target,
            ]
        )
        == 1
    )
    assert "MODEL_MISMATCH" in capsys.readouterr().err
    assert main(["model", *target, "check", "items", "v2", "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["compatible"] is True
