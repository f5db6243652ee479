"""`sievedb model ...`: the model registry from the command line.

sievedb model probe-set items --labels probe_labels.npy [--ids probe_ids.txt] [--replace]
sievedb model register items v2 --probe-vectors v2_probe.npy [--simplex 10]
sievedb model list items
sievedb model check items v2 [--threshold ecc_margin=0.02] [--json]
sievedb model promote items v2 [--adapter procrustes] [--make-default]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from sievedb.cli import CliError, add_client_args, client_from_args, print_table

__all__ = ["add_parser", "format_report", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "model",
        help="register, check and promote embedding models of a collection",
        description="Model registry: probe set, registration, compatibility check, promotion.",
    )
    add_client_args(p)
    sub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    q = sub.add_parser("probe-set", help="register the labelled probe items")
    q.add_argument("collection")
    q.add_argument("--labels", required=True, help=".npy of integer class labels, one per item")
    q.add_argument("--ids", help="text file, one probe item id per line (default: row numbers)")
    q.add_argument("--replace", action="store_true", help="replace an existing probe set")

    q = sub.add_parser("register", help="register a model with its probe embeddings")
    q.add_argument("collection")
    q.add_argument("model")
    q.add_argument("--probe-vectors", help=".npy (n_probe, dim) embeddings of the probe items")
    q.add_argument("--dim", type=int, help="default: from --probe-vectors")
    q.add_argument(
        "--simplex",
        type=int,
        metavar="K",
        help="trained against the fixed d-Simplex over K classes (dim K-1)",
    )
    q.add_argument("--description", default="")

    q = sub.add_parser("list", help="list the collection's models")
    q.add_argument("collection")

    for name, text in (
        ("check", "print the compatibility report"),
        ("promote", "promote a compatible model (or with a verified adapter)"),
    ):
        q = sub.add_parser(name, help=text)
        q.add_argument("collection")
        q.add_argument("model")
        q.add_argument(
            "--threshold",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="tighten a default threshold (repeatable)",
        )
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--json", action="store_true", help="print the full report as JSON")
        if name == "check":
            q.add_argument("--probe-vectors", help="replace the stored probe embeddings first")
        else:
            q.add_argument("--adapter", default="", choices=["", "procrustes", "lowrank"])
            q.add_argument("--make-default", action="store_true")


def _thresholds(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--threshold wants NAME=VALUE, got {item!r}")
        out[name] = json.loads(value)
    return out


def _load(path: str) -> np.ndarray:
    try:
        return np.load(Path(path))
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc


def format_report(report: dict[str, Any]) -> str:
    """A readable summary of a compatibility report (every gated number and the verdict)."""
    verdict = "COMPATIBLE" if report["compatible"] else "INCOMPATIBLE"
    lines = [
        (
            f"model {report['candidate']}: {verdict}  (probe {report['num_probe']} items: "
            f"{report['num_query']} queries / {report['num_gallery']} gallery, "
            f"metric {report['metric']})"
        )
    ]
    for g in report["generations"]:
        i, t, pw = g["instance"], g["template"], g["pairwise"]
        c, r = g["centroids"], g["rotation"]
        mixed = ", ".join(f"{k}:{v:.3f}" for k, v in g["mixed_index"].items())
        same = f"{pw['same_mean_no']:.3f} <= {pw['same_mean_oo']:.3f}"
        diff = f"{pw['diff_mean_no']:.3f} >= {pw['diff_mean_oo']:.3f}"
        lines += [
            f"  vs {g['model_id']}{' (identical)' if g['identical'] else ''}: "
            + ("pass" if g["passed"] else "FAIL"),
            (
                f"    ECC top-1  instance new->old {i['top1_no']:.3f} vs old->old {i['top1_oo']:.3f}"
                f" (new->new {i['top1_nn']:.3f});  templates {t['top1_no']:.3f} vs {t['top1_oo']:.3f}"
            ),
            (
                f"    margin     5% bootstrap lower bound of new->old minus old->old "
                f"{i.get('margin_lower_5pct', float('nan')):+.3f}"
            ),
            (
                f"    ECC mAP    instance new->old {i['map_no']:.3f} vs old->old {i['map_oo']:.3f};"
                f"  templates {t['map_no']:.3f} vs {t['map_oo']:.3f}"
            ),
            (
                f"    pairwise   same-class d(new,old) {same} (rate {pw['same_rate']:.2f});"
                f" other-class {diff} (rate {pw['diff_rate']:.2f})"
            ),
            (
                f"    centroids  cosine {c['mean_cosine']:.3f} (others {c['mean_other_cosine']:.3f}),"
                f" NN accuracy {c['nn_accuracy']:.2f}"
            ),
            (
                f"    rotation   Procrustes deviation {r['deviation']:.3f}, top-1 after it "
                f"{r['top1_no_rotated']:.3f};  negative flips {g['negative_flip_rate']:.3f};"
                f"  mixed index {mixed}"
            ),
        ]
    for model_id, sx in (report.get("simplex") or {}).items():
        lines.append(
            f"  simplex {model_id}: centroid->vertex NN {sx['centroid_nn_accuracy']:.2f},"
            f" centroid cosine {sx['centroid_cosine']:.3f}, nearest-vertex accuracy "
            f"{sx['nearest_vertex_accuracy']:.3f}"
        )
    lines += [f"  reason: {why}" for why in report["reasons"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    with client_from_args(args) as db:
        cmd = args.model_command
        if cmd == "probe-set":
            labels = _load(args.labels).astype(np.int64)
            ids = (
                Path(args.ids).read_text().split()
                if args.ids
                else [str(i) for i in range(len(labels))]
            )
            n = db.set_probe_set(args.collection, ids, labels.tolist(), replace=args.replace)
            print(f"probe set of {args.collection}: {n} items, {len(set(labels.tolist()))} classes")
        elif cmd == "register":
            vecs = _load(args.probe_vectors) if args.probe_vectors else None
            dim = args.dim or (vecs.shape[1] if vecs is not None else 0)
            if not dim:
                raise CliError("give --dim or --probe-vectors")
            simplex = (args.simplex, args.simplex - 1) if args.simplex else None
            info = db.register_model(
                args.collection,
                args.model,
                dim,
                probe_vectors=vecs,
                simplex=simplex,
                description=args.description,
            )
            print(f"registered {info.id} (generation {info.generation}, {info.state})")
        elif cmd == "list":
            rows = [
                (
                    m.id,
                    m.generation,
                    m.state + (" (default)" if m.is_default else ""),
                    m.dim,
                    m.adapter or "-",
                    f"K={m.simplex[0]}" if m.simplex else "-",
                )
                for m in db.list_models(args.collection)
            ]
            print_table(["model", "gen", "state", "dim", "adapter", "simplex"], rows)
        elif cmd == "check":
            vecs = _load(args.probe_vectors) if args.probe_vectors else None
            check = db.check_model(
                args.collection,
                args.model,
                probe_vectors=vecs,
                thresholds=_thresholds(args.threshold),
                seed=args.seed,
            )
            print(json.dumps(check.report, indent=2) if args.json else format_report(check.report))
            return 0 if check.compatible else 2
        elif cmd == "promote":
            info, check = db.promote_model(
                args.collection,
                args.model,
                adapter=args.adapter,
                thresholds=_thresholds(args.threshold),
                make_default=args.make_default,
                seed=args.seed,
            )
            print(json.dumps(check.report, indent=2) if args.json else format_report(check.report))
            print(
                f"promoted {info.id}: {info.state}"
                + (
                    f" with a {info.adapter} query adapter (verified on held-out probes)"
                    if info.adapter
                    else " (no vector rewritten)"
                )
            )
    return 0
