"""The committed generated code is exactly what the pinned grpcio-tools produces from the .proto."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "proto" / "sievedb_proto" / "v1"


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_proto"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    gen = _load_generator()
    (tmp_path / "sievedb_proto" / "v1").mkdir(parents=True)
    produced = gen.generate(tmp_path)
    assert {p.name for p in produced} == {
        "sievedb_pb2.py", "sievedb_pb2.pyi", "sievedb_pb2_grpc.py"
    }
    for path in produced:
        committed = GENERATED / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed.relative_to(ROOT)} is stale: run `make proto` and commit the result"
        )
