"""Regenerate the committed gRPC/protobuf code from proto/sievedb_proto/v1/*.proto.

Run with the pinned grpcio-tools of the `dev` extra:  python scripts/gen_proto.py
`tests/test_proto_generated.py` runs the same generation into a temporary folder and diffs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PINNED_GRPCIO_TOOLS = "1.85.1"


def generate(out_root: Path) -> list[Path]:
    """Generate *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every v1 proto under `out_root`."""
    import grpc_tools
    from grpc_tools import protoc

    version = getattr(grpc_tools, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("grpcio-tools")
    if version != PINNED_GRPCIO_TOOLS:
        raise SystemExit(f"grpcio-tools {PINNED_GRPCIO_TOOLS} is pinned; found {version}")
    protos = sorted((PROTO_ROOT / "sievedb_proto" / "v1").glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    for proto in protos:
        rel = proto.relative_to(PROTO_ROOT)
        rc = protoc.main([
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(rel),
        ])
        if rc != 0:
            raise SystemExit(f"protoc failed on {rel}")
    return sorted((out_root / "sievedb_proto" / "v1").glob("*_pb2*.py*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_ROOT, help="output source root")
    args = parser.parse_args()
    (args.out / "sievedb_proto" / "v1").mkdir(parents=True, exist_ok=True)
    for path in generate(args.out):
        print(path.relative_to(args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
