"""Proto <-> domain for the model registry messages (ModelSpec, ModelInfo, reports)."""

from __future__ import annotations

import json
import math
from typing import Any

from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb_server.compat import CompatReport, SimplexSpec, Thresholds
from sievedb_server.core.models import ModelRecord, ModelSpec
from sievedb_server.errors import InvalidArgument

__all__ = [
    "decode_model_spec",
    "decode_thresholds",
    "encode_model_info",
    "encode_model_spec",
    "report_json",
]


def decode_model_spec(msg: pb.ModelSpec) -> ModelSpec:
    simplex = None
    if msg.HasField("simplex"):
        try:
            simplex = SimplexSpec(
                int(msg.simplex.num_classes),
                int(msg.simplex.dim),
                tuple(int(v) for v in msg.simplex.class_to_vertex),
            )
        except ValueError as exc:
            raise InvalidArgument(f"model {msg.id!r}: {exc}") from exc
    return ModelSpec(msg.id, int(msg.dim), bool(msg.normalized), simplex, msg.description)


def encode_model_spec(spec: ModelSpec) -> pb.ModelSpec:
    out = pb.ModelSpec(
        id=spec.id, dim=spec.dim, normalized=spec.normalized, description=spec.description
    )
    if spec.simplex is not None:
        out.simplex.CopyFrom(
            pb.SimplexSpec(
                num_classes=spec.simplex.num_classes,
                dim=spec.simplex.dim,
                class_to_vertex=list(spec.simplex.class_to_vertex),
            )
        )
    return out


def encode_model_info(rec: ModelRecord, default_id: str) -> pb.ModelInfo:
    return pb.ModelInfo(
        spec=encode_model_spec(rec.spec),
        state=rec.state,
        generation=rec.generation,
        adapter=rec.adapter.kind if rec.adapter else "",
        is_default=rec.spec.id == default_id,
    )


def decode_thresholds(raw: str) -> Thresholds | None:
    if not raw:
        return None
    try:
        overrides = json.loads(raw)
        if not isinstance(overrides, dict):
            raise TypeError("thresholds_json must be a JSON object")
        return Thresholds.from_overrides(overrides)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"thresholds: {exc}") from exc


def _clean(value: Any) -> Any:
    """NaN/Inf are not JSON: send them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def report_json(report: CompatReport) -> str:
    return json.dumps(_clean(report.to_dict()), sort_keys=True)
