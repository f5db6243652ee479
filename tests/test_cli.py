"""The `sievedb` CLI against a real server, and `sievedb serve` as a subprocess."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sievedb import Client
from sievedb.cli import PLUGIN_COMMANDS, main
from sievedb_server.core.engine import Engine
from sievedb_server.transport.server import SieveServer

BUILTIN = ["serve", "collections", "create", "drop", "info", "count", "query"]


@pytest.mark.parametrize("command", BUILTIN)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: sievedb " + command in capsys.readouterr().out


def test_top_level_help_lists_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name, _, _ in PLUGIN_COMMANDS:
        assert name in out


def test_every_plugin_module_exists() -> None:
    missing = [n for n, module, _ in PLUGIN_COMMANDS if importlib.util.find_spec(module) is None]
    assert missing == []


def test_missing_plugin_module_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "sievedb.cli.PLUGIN_COMMANDS",
        [*PLUGIN_COMMANDS, ("ghost", "sievedb._no_such_plugin", "a command whose module is gone")],
    )
    assert main(["ghost"]) == 1
    assert "is missing" in capsys.readouterr().err


@pytest.fixture
def target(server_handle: tuple[SieveServer, int], engine: Engine) -> list[str]:
    _, port = server_handle
    return ["--target", f"127.0.0.1:{port}"]


def test_collection_lifecycle(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collections", *target]) == 0
    assert "no collections" in capsys.readouterr().out
    assert (
        main(["create", "c", "--dim", "3", "--metric", "l2", "--schema", "year:integer", *target])
        == 0
    )
    assert "created collection 'c'" in capsys.readouterr().out
    assert main(["collections", *target]) == 0
    out = capsys.readouterr().out
    assert "name" in out and "c " in out
    assert main(["info", "c", *target]) == 0
    out = capsys.readouterr().out
    assert "l2" in out and "field year" in out
    assert main(["drop", "c", *target]) == 0
    assert "dropped" in capsys.readouterr().out


def test_query_and_count(target: list[str], tmp_path: Path, capsys: Any) -> None:
    with Client(target[1]) as db:
        db.create_collection("c", 3, "l2")
        db.upsert("c", [10, 20, 30], np.eye(3, dtype=np.float32), [{"n": i} for i in range(3)])
    assert main(["count", "c", *target]) == 0
    assert capsys.readouterr().out.strip() == "3"
    assert main(["query", "c", "--vector", "0,1,0", "--k", "2", "--explain", *target]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["rank", "id", "score"]
    assert lines[2].split()[:2] == ["1", "20"]
    assert "plan: strategy=" in out
    np.save(tmp_path / "q.npy", np.eye(3, dtype=np.float32))
    assert (
        main(
            [
                "query",
                "c",
                "--vector-file",
                str(tmp_path / "q.npy"),
                "--row",
                "2",
                "--k",
                "1",
                "--exact",
                *target,
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[2].split()[:2] == ["1", "30"]


def test_server_errors_print_reason_and_request_id(target: list[str], capsys: Any) -> None:
    assert main(["info", "nope", *target]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: COLLECTION_NOT_FOUND: ")
    assert "(request id " in captured.err
    assert "Traceback" not in captured.err
    assert main(["query", "nope", "--vector", "1,x", *target]) == 1
    assert "comma-separated" in capsys.readouterr().err


def test_unreachable_server_is_a_clean_error(capsys: Any) -> None:
    from conftest import free_port

    assert main(["collections", "--target", f"127.0.0.1:{free_port()}", "--timeout", "2"]) == 1
    assert capsys.readouterr().err.startswith("error: UNAVAILABLE: ")


def test_serve_subprocess_sigterm_is_graceful_and_durable(
    tmp_path: Path, spawn_server: Any
) -> None:
    data_dir = tmp_path / "data"
    proc, port = spawn_server(data_dir)
    with Client(f"127.0.0.1:{port}") as db:
        db.create_collection("c", 8)
        db.upsert("c", list(range(100)), np.random.default_rng(0).standard_normal((100, 8)))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log = proc.log_path.read_text()
    assert f"sievedb listening on 127.0.0.1:{port}, data dir {data_dir.resolve()}" in log
    assert "stopped cleanly" in log

    proc2, port2 = spawn_server(data_dir)
    with Client(f"127.0.0.1:{port2}") as db:
        assert db.count("c") == 100
        assert db.describe_collection("c").dim == 8
    proc2.send_signal(signal.SIGINT)
    assert proc2.wait(timeout=30) == 0
