"""Replace the embedding model of a live collection, end to end, against a real sievedb server.

    python examples/upgrade.py                    # the recipe's synthetic classes (numpy only)
    python examples/upgrade.py --dataset digits   # scikit-learn's bundled digits
                                                  # (pip install -e '.[examples]')

Trains tiny numpy encoders against a fixed d-Simplex classifier: v1 on a little data, v2 on more
data with an independent init (compatible by construction), plus a model with a learnable
classifier and a rotated copy of v2 (both incompatible). It loads the gallery with v1 through
the bulk-load path behind the alias `items`, then shows:

1. accept:   v2 passes the compatibility check and is promoted; no vector is rewritten and v2
             queries are served against the v1 gallery at once;
2. reject:   the learnable-classifier model is refused with its report;
3. adapter:  the rotated model is promoted with an orthogonal Procrustes query adapter fitted on
             half the probe set and verified on the other half;
4. re-index: the learnable model gets a shadow collection filled through the bulk-load path,
             then an atomic alias switch, and a rollback.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sievedb import Client
from sievedb.compat_models import Encoder, GaussianClasses, train_zoo
from sievedb.errors import IncompatibleModel
from sievedb.model_cli import format_report
from sievedb.upgrade import ShadowReindex, backfill_order

K = 10  # classes; embeddings live in K - 1 = 9 dimensions


def split(y: np.ndarray, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Per class: the first sizes[name] shuffled rows to each part; 'gallery' takes the rest."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in [*sizes, "gallery"]}
    for c in range(K):
        rows = rng.permutation(np.flatnonzero(y == c))
        start = 0
        for name, n in sizes.items():
            parts[name].append(rows[start : start + n])
            start += n
        parts["gallery"].append(rows[start:])
    return {name: np.concatenate(p) for name, p in parts.items()}


def dataset(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            sys.exit("--dataset digits needs scikit-learn: pip install -e '.[examples]'")
        x, y = load_digits(return_X_y=True)
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        sizes = {"old": 15, "new": 60, "probe": 30, "query": 20}
    else:
        data = GaussianClasses.make(K, 32, seed=seed)
        x, y = data.sample(400, seed + 1)
        sizes = {"old": 15, "new": 100, "probe": 40, "query": 40}
    return x.astype(np.float64), y.astype(np.int64), split(y, sizes, seed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", choices=["synthetic", "digits"], default="synthetic")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", help="use a running server (default: start one in-process)")
    args = ap.parse_args()
    t0 = time.perf_counter()

    x, y, parts = dataset(args.dataset, args.seed)
    old, new, probe, query, gallery = (
        parts[k] for k in ("old", "new", "probe", "query", "gallery")
    )
    models = train_zoo(x[old], y[old], x[new], y[new], num_classes=K, seed=args.seed)
    print(
        f"dataset {args.dataset}: {len(x)} items, gallery {len(gallery)}, probe {len(probe)},"
        f" queries {len(query)}; trained {', '.join(models)} "
        f"in {time.perf_counter() - t0:.1f}s"
    )

    server = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.target:
            target = args.target
        else:
            from sievedb_server.transport.server import create_server

            server, port = create_server("127.0.0.1:0", Path(tmp) / "data")
            server.start()
            target = f"127.0.0.1:{port}"
        try:
            with Client(target) as db:
                run(db, models, x, y, probe, query, gallery)
        finally:
            if server is not None:
                server.shutdown(grace=1.0)
    print(f"\ndone in {time.perf_counter() - t0:.1f}s")
    return 0


def run(
    db: Client,
    models: dict[str, Encoder],
    x: np.ndarray,
    y: np.ndarray,
    probe: np.ndarray,
    query: np.ndarray,
    gallery: np.ndarray,
) -> None:
    def section(title: str) -> None:
        print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))

    def accuracy(model: str, enc: Encoder) -> float:
        """top-1 label accuracy of `enc`'s queries against whatever `items` serves now."""
        res = db.search_batch("items", enc.embed(x[query]), k=1, model=model)
        return float(
            np.mean([(r.hits[0].attributes or {})["label"] == c for r, c in zip(res, y[query])])
        )

    probe_ids = [f"probe-{i}" for i in probe]
    db.create_collection("items_v1", dim=K - 1, schema={"label": "integer"})
    db.set_alias("items", "items_v1")
    db.set_probe_set("items", probe_ids, y[probe])
    db.register_model(
        "items", "v1", K - 1, probe_vectors=models["v1"].embed(x[probe]), simplex=(K, K - 1)
    )
    db.bulk_load(
        "items",
        models["v1"].embed(x[gallery]),
        ids=gallery.tolist(),
        attributes=[{"label": int(c)} for c in y[gallery]],
        model="v1",
    )
    db.wait_indexed("items", poll=0.05)
    print(f"loaded {db.count('items')} points with v1 behind alias 'items' -> items_v1")
    print(f"v1 queries on the v1 gallery: top-1 {accuracy('v1', models['v1']):.3f}")

    section("1. accept: v2, trained against the same fixed d-Simplex")
    db.register_model(
        "items", "v2", K - 1, probe_vectors=models["v2"].embed(x[probe]), simplex=(K, K - 1)
    )
    check = db.check_model("items", "v2")
    print(format_report(check.report))
    info, _ = db.promote_model("items", "v2")
    by_v1 = db.count("items", filter='_model == "v1"')
    print(
        f"promoted v2 ({info.state}); no vector rewritten: still {db.count('items')} points,"
        f" {by_v1} of them embedded by v1"
    )
    print(f"v2 queries on the v1 gallery: top-1 {accuracy('v2', models['v2']):.3f}")

    section("2. reject: a model trained with a learnable classifier")
    db.register_model(
        "items",
        "learnable",
        K - 1,
        probe_vectors=models["learnable"].embed(x[probe]),
        simplex=(K, K - 1),
    )
    print(format_report(db.check_model("items", "learnable").report))
    try:
        db.promote_model("items", "learnable")
    except IncompatibleModel as exc:
        print(f"promotion refused: {exc.reason}")

    section("3. adapter: v2 rotated by a random orthogonal matrix")
    db.register_model("items", "rotated", K - 1, probe_vectors=models["rotated"].embed(x[probe]))
    before = accuracy("v2", models["v2"])
    try:
        info, verified = db.promote_model("items", "rotated", adapter="procrustes")
        print("check on the held-out half of the probe set, with adapted queries:")
        print(format_report(verified.report))
        print(
            f"promoted 'rotated' with a {info.adapter} query adapter;"
            f" rotated queries on the v1 gallery: top-1 {accuracy('rotated', models['rotated']):.3f}"
            f" (v2: {before:.3f})"
        )
    except IncompatibleModel as exc:
        print(f"even the adapter was refused: {exc.message}")

    section("4. re-index: shadow collection for the learnable model, then an atomic switch")
    up = ShadowReindex(
        db,
        alias="items",
        shadow="items_learnable",
        model="learnable",
        dim=K - 1,
        schema={"label": "integer"},
    )
    up.prepare(probe_ids, y[probe], models["learnable"].embed(x[probe]))
    order = gallery[backfill_order(models["v1"].embed(x[gallery]), y[gallery])]
    vecs = models["learnable"].embed(x[order])
    batches = [
        (
            vecs[s : s + 256],
            order[s : s + 256].tolist(),
            [{"label": int(c)} for c in y[order[s : s + 256]]],
        )
        for s in range(0, len(order), 256)
    ]
    n = up.backfill(batches, load_id="items-learnable")
    print(
        f"backfilled {n} points into items_learnable (farthest-from-class-mean first);"
        f" 'items' still serves v1: top-1 {accuracy('v1', models['v1']):.3f}"
    )
    alias = up.switch()
    print(
        f"switched: items -> {alias.collection} (previous {alias.previous});"
        f" learnable queries: top-1 {accuracy('learnable', models['learnable']):.3f}"
    )
    alias = up.rollback()
    print(
        f"rolled back: items -> {alias.collection}; v1 queries: top-1 "
        f"{accuracy('v1', models['v1']):.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
