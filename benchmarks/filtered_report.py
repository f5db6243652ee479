"""Reports of `bench_filtered`: the verdict table, the per-system tables and the plot.

Rendered from the result document alone, so `bench_filtered --render-only` can redraw a
committed run without measuring again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.harness import markdown_table

__all__ = ["SUMMARY_TARGET", "plot_recall_qps", "render_markdown"]


def _param_label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={'default' if v is None else v}" for k, v in params.items())



SUMMARY_TARGET = 0.95


def _best_at(rows: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    ok = [r for r in rows if r["recall"] >= target]
    return max(ok, key=lambda r: r["qps"]) if ok else None


def _dominance(
    ours: list[dict[str, Any]], theirs: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """The issue's test: sievedb's QPS at recall ≥ target against the best baseline QPS at the
    same or higher recall. Returns (sievedb row, strongest such baseline row) for the sievedb
    configuration with the best ratio, or None if sievedb never reaches the target."""
    best: tuple[float, dict[str, Any], dict[str, Any] | None] | None = None
    for r in ours:
        if r["recall"] < SUMMARY_TARGET:
            continue
        rival = _best_at(theirs, r["recall"])
        ratio = r["qps"] / rival["qps"] if rival else float("inf")
        if best is None or ratio > best[0]:
            best = (ratio, r, rival)
    return None if best is None else (best[1], best[2])


def _pool_exact_repeats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """sievedb rows whose every query was planned `exact` measure the same thing (ef does not
    change an exact scan): pool them into one row, QPS = all their queries / all their time.

    Picking the fastest of several repeats would credit sievedb with the luckiest of them.
    """
    exact = [r for r in rows if set(r.get("strategies", {})) == {"exact"}]
    if len(exact) < 2:
        return rows
    seconds = sum(r["queries"] / r["qps"] for r in exact)
    pooled = {
        **exact[0],
        "params": {"ef": f"any ({len(exact)} exact-plan rows pooled)"},
        "qps": sum(r["queries"] for r in exact) / seconds,
        "recall": min(r["recall"] for r in exact),
    }
    return [r for r in rows if r not in exact] + [pooled]


def _verdict(v: dict[str, Any]) -> list[str]:
    """Per bucket: sievedb in-process against the baselines, two ways.

    Like-for-like baselines evaluate each query's filter themselves (rows `<system>+filter`),
    as sievedb does; oracle rows get the allowed set for free and are shown for reference.
    "Threshold": fastest of each at recall ≥ target. "Same or higher recall" (the issue's
    criterion): a sievedb configuration against the fastest baseline at ≥ its recall.
    """
    rows_out = []
    for b in v["buckets"]:
        brows = [r for r in v["rows"] if r["bucket"] == b["bucket"]]
        mine = _pool_exact_repeats([r for r in brows if r["system"] == "sievedb"])
        ours = _best_at(mine, SUMMARY_TARGET)
        base = [r for r in brows if not r["system"].startswith("sievedb")]
        fair_rows = [r for r in base if r["system"].endswith("+filter")]
        fair = _best_at(fair_rows, SUMMARY_TARGET)
        oracle_rows = [r for r in base if not r["system"].endswith("+filter")]
        oracle = _best_at(oracle_rows, SUMMARY_TARGET)

        def cell(r: dict[str, Any] | None) -> str:
            if r is None:
                return "none reached"
            return f"{r['system']} {_param_label(r['params'])} {r['qps']:,.0f} ({r['recall']:.3f})"

        def ratio(r: dict[str, Any] | None) -> str:
            return "–" if ours is None or r is None else f"{ours['qps'] / r['qps']:.2f}×"

        def same_or_higher(rows: list[dict[str, Any]]) -> str:
            dom = _dominance(mine, rows)
            if dom is None:
                return "sievedb never reached the target"
            if dom[1] is None:
                return f"{cell(dom[0])}: no baseline at ≥ its recall"
            return f"{cell(dom[0])} vs {cell(dom[1])}: {dom[0]['qps'] / dom[1]['qps']:.2f}×"

        def holds(rows: list[dict[str, Any]]) -> bool:
            dom = _dominance(mine, rows)
            return dom is not None and (dom[1] is None or dom[0]["qps"] >= dom[1]["qps"])

        rows_out.append({
            "bucket": b["bucket"],
            "sievedb QPS (recall)": cell(ours),
            "best like-for-like baseline": cell(fair),
            "ratio": ratio(fair),
            "like-for-like at same or higher recall": same_or_higher(fair_rows),
            "criterion": "met" if holds(fair_rows) else "NOT met",
            "best oracle baseline": cell(oracle),
            "ratio vs oracle": ratio(oracle),
            "oracle at same or higher recall": same_or_higher(oracle_rows),
        })
    return [
        f"### Verdict: QPS at recall@10 ≥ {SUMMARY_TARGET}",
        "",
        "Like-for-like baselines evaluate each query's filter themselves, as sievedb does; "
        "oracle baselines are handed the allowed set for free. Ratio = sievedb QPS / baseline "
        "QPS (above 1: sievedb is faster). `ratio` compares the fastest of each at recall ≥ "
        f"{SUMMARY_TARGET}; the 'same or higher recall' column compares a sievedb "
        "configuration with the fastest like-for-like baseline at the same or higher recall "
        "(the sievedb configuration with the best such ratio is shown). Where every query of "
        "several sievedb rows was planned `exact`, those rows repeat one measurement (ef does "
        "not change an exact scan) and count as one, pooled: all their queries over all their "
        "time, not the fastest repeat.",
        "",
        "`criterion` is the issue's test, on the like-for-like rows: sievedb's QPS at recall "
        f"≥ {SUMMARY_TARGET} at least the best baseline's at the same or higher recall. A "
        "filtered query's work includes evaluating its filter, so that is the comparison the "
        "test is judged on; the oracle rows skip that work (an upper bound on the baselines, "
        "like the 'oracle partition' of the ACORN paper) and show how much of the margin is "
        "the filter's.",
        "",
        markdown_table(rows_out, list(rows_out[0]) if rows_out else []),
        "",
    ]


def render_markdown(doc: dict[str, Any]) -> str:
    passes = int(doc.get("workload", {}).get("passes", 1))
    timing = doc.get("timing")
    evict_mb = int(doc.get("workload", {}).get("evict_mb", 0))
    order = {
        "interleaved": "interleaved across configurations (every configuration's pass 1, "
                       "then pass 2, ...)",
        "interleaved by bucket": "interleaved bucket by bucket (within a pass, every "
                                 "configuration runs one bucket's queries, in a rotating order, "
                                 "before any runs the next bucket"
                                 + (f"; before each, {evict_mb} MiB are read to evict the "
                                    "caches" if evict_mb else "") + ")",
    }.get(str(timing), "back to back")
    out: list[str] = [
        f"Total runtime {doc['runtime_seconds'] / 60:.1f} min. One thread; each configuration "
        f"ran {passes} pass{'es' if passes > 1 else ''} over its queries, {order}, and a "
        "query's latency is its median over the passes; QPS = queries / sum of those latencies."
    ]
    for v in doc["variants"]:
        out += ["", f"## Variant `{v['variant']}`", ""]
        out.append(markdown_table(
            [{**b, "templates": ", ".join(f"{k} {n}" for k, n in b["templates"].items())}
             for b in v["buckets"]],
            ["bucket", "queries", "allowed_median", "allowed_min", "allowed_max", "templates"],
        ))
        builds = ", ".join(
            f"{s} {b['seconds']:.0f} s{' (cached)' if b.get('cached') else ''}"
            for s, b in v["builds"].items()
        )
        out += ["", f"Build / load times (all cores): {builds}.", ""]
        huge = v["builds"].get("sievedb", {}).get("graph_huge_page_mib")
        if huge is not None:
            out += [f"Memory: sievedb's HNSW level-0 block had {huge:,.0f} MiB on transparent "
                    "huge pages (sievedb asks for them, index/hugepages.py; kernel THP mode "
                    f"`{v.get('thp_mode', '?')}`); the hnswlib and FAISS baselines keep "
                    "their libraries' allocation (4 KiB pages under THP `madvise`). "
                    "`python -m benchmarks.bench_hugepages` measures what that is worth.", ""]
        out += _verdict(v)
        out.append(f"### Best QPS at recall@10 ≥ {SUMMARY_TARGET} per system")
        out.append("")
        out.append("sievedb's default (ef=default) is in the full table below. Where sievedb "
                   "plans `exact`, ef does not matter and its ef rows are repeat measurements.")
        out.append("")
        summary = []
        for b in v["buckets"]:
            brows = [r for r in v["rows"] if r["bucket"] == b["bucket"]]
            for system in dict.fromkeys(r["system"] for r in brows):
                srows = [r for r in brows if r["system"] == system]
                best = _best_at(srows, SUMMARY_TARGET)
                top = max(srows, key=lambda r: r["recall"])
                summary.append({
                    "bucket": b["bucket"],
                    "system": system,
                    "best config": _param_label(best["params"]) if best else "(never reached)",
                    "QPS": best["qps"] if best else float("nan"),
                    "recall": best["recall"] if best else top["recall"],
                    "p50 ms": best["p50_ms"] if best else float("nan"),
                    "p99 ms": best["p99_ms"] if best else float("nan"),
                })
        out.append(markdown_table(
            summary, ["bucket", "system", "best config", "QPS", "recall", "p50 ms", "p99 ms"]
        ))
        out += ["", "### All configurations", ""]
        full = [
            {
                "bucket": r["bucket"],
                "system": r["system"],
                "params": _param_label(r["params"]),
                "recall@10": r["recall"],
                "QPS": r["qps"],
                "p50 ms": r["p50_ms"],
                "p99 ms": r["p99_ms"],
                "short": r["short_results"],
                "plans (n, p50 ms)": ", ".join(
                    f"{k} {n} ({r['p50_ms_by_strategy'][k]:.2f})"
                    for k, n in r.get("strategies", {}).items()
                ),
                "stages p50 ms": ", ".join(
                    f"{k} {v:.2f}" for k, v in r.get("stage_p50_ms", {}).items()
                ),
            }
            for r in v["rows"]
        ]
        out.append(markdown_table(
            full,
            ["bucket", "system", "params", "recall@10", "QPS", "p50 ms", "p99 ms", "short",
             "plans (n, p50 ms)", "stages p50 ms"],
        ))
    return "\n".join(out)


STYLE = {
    "sievedb": ("tab:red", "o"),
    "sievedb_grpc": ("darkred", "*"),
    "numpy_exact": ("black", "s"),
    "hnswlib_filter": ("tab:blue", "^"),
    "hnswlib_postfilter": ("tab:cyan", "v"),
    "faiss_hnsw": ("tab:green", "D"),
}


def plot_recall_qps(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = doc["variants"]
    buckets = [b["bucket"] for b in variants[0]["buckets"]]
    fig, axes = plt.subplots(
        len(variants), len(buckets), figsize=(4.2 * len(buckets), 3.8 * len(variants)),
        squeeze=False, sharex=True,
    )
    for r_i, v in enumerate(variants):
        for c_i, b in enumerate(buckets):
            ax = axes[r_i][c_i]
            brows = [r for r in v["rows"] if r["bucket"] == b]
            for system in dict.fromkeys(r["system"] for r in brows):
                srows = sorted((r for r in brows if r["system"] == system),
                               key=lambda r: r["recall"])
                color, marker = STYLE.get(system.removesuffix("+filter"), ("gray", "."))
                style = "--" if system.endswith("+filter") else "-"
                ax.plot([r["recall"] for r in srows], [r["qps"] for r in srows], style,
                        marker=marker, color=color, label=system, lw=1.2, ms=5)
                if system == "sievedb":  # ring the default configuration
                    d = [r for r in srows if r["params"].get("ef") is None]
                    ax.plot([r["recall"] for r in d], [r["qps"] for r in d], "o", ms=11,
                            mfc="none", mec=color, mew=1.5)
            info = next(x for x in v["buckets"] if x["bucket"] == b)
            ax.set_title(f"{v['variant']} · {b} (median {info['allowed_median']:,.0f} allowed)",
                         fontsize=9)
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            if r_i == len(variants) - 1:
                ax.set_xlabel("recall@10")
            if c_i == 0:
                ax.set_ylabel("QPS (1 thread, log)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(6, len(labels)), fontsize=9,
               bbox_to_anchor=(0.5, 1.0))
    fig.suptitle("Filtered k=10 search: recall vs QPS per selectivity bucket "
                 "(up and to the right is better; ringed = sievedb default)", y=1.04,
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
