"""Reports of the FANNS suite: Markdown tables, recall-vs-QPS PNGs, the winners' summary.

All figures come from the result document (`suite.run`); `python -m benchmarks.suite
--render-only RESULT.json` redraws them. "Tuned" rows are measured on the held-out queries at
the setting the tuner chose on the tuning subset; a system *qualifies* in a bucket when that
held-out recall@k is ≥ the target (0.95), and the winner is the qualifying system with the
highest single-thread QPS.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import markdown_table, write_results

__all__ = ["merge", "summary_rows", "write"]

MB = 1024 * 1024


def _tuned(doc: dict[str, Any], mode: str = "single") -> list[dict[str, Any]]:
    return [r for r in doc["rows"] if r.get("phase") == "tuned" and r.get("mode") == mode]


def _params(p: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (p or {}).items()) or "–"


def _whole(x: Any) -> Any:
    """Medians of counts print as counts (37, not 37.00) when they are whole."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


def summary_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per workload × bucket × k: the winner at recall ≥ target and its margin; sievedb's
    ratio to the best system that is not sievedb."""
    target = float(doc["workload"]["protocol"]["target_recall"])
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in _tuned(doc):
        groups[(r["workload"], r["bucket"], int(r["k"]))].append(r)
    allowed = {(b["workload"], b["bucket"]): _whole(b.get("allowed_median"))
               for b in doc["buckets"]}
    out = []
    for (w, b, k), rows in groups.items():
        ok = sorted((r for r in rows if r["recall"] >= target), key=lambda r: -r["qps"])
        sv = next((r for r in rows if r["system"] == "sievedb"), None)
        others = [r for r in ok if not r["system"].startswith("sievedb")]
        row: dict[str, Any] = {
            "workload": w, "bucket": b, "k": k, "allowed": allowed.get((w, b)),
            "winner": ok[0]["system"] if ok else "none ≥ target",
            "winner_qps": ok[0]["qps"] if ok else float("nan"),
            "runner_up": ok[1]["system"] if len(ok) > 1 else "–",
            "ratio": ok[0]["qps"] / ok[1]["qps"] if len(ok) > 1 else float("nan"),
            "sievedb_recall": sv["recall"] if sv else float("nan"),
            "sievedb_qps": sv["qps"] if sv else float("nan"),
            "best_other": others[0]["system"] if others else "none ≥ target",
            "sievedb_vs_best_other": (
                sv["qps"] / others[0]["qps"]
                if sv is not None and sv["recall"] >= target and others else float("nan")
            ),
        }
        out.append(row)
    order = {w: i for i, w in enumerate(doc["workload"]["workloads"])}
    border = {b["name"]: i for i, b in enumerate(doc["workload"]["buckets"])}
    out.sort(key=lambda r: (r["k"], order.get(r["workload"], 99), border.get(r["bucket"], 99)))
    return out


def _tally(rows: list[dict[str, Any]]) -> str:
    """One sentence: how often sievedb wins, and its ratio to the best other system."""
    wins: dict[str, int] = defaultdict(int)
    for r in rows:
        wins[r["winner"]] += 1
    ratios = [r["sievedb_vs_best_other"] for r in rows
              if r["sievedb_vs_best_other"] == r["sievedb_vs_best_other"]]
    text = (f"Wins over {len(rows)} workload × bucket cells: "
            + ", ".join(f"{s} {n}" for s, n in sorted(wins.items(), key=lambda x: -x[1])) + ".")
    if ratios:
        text += (f" sievedb (in-process) / best non-sievedb system: median "
                 f"{float(np.median(ratios)):.2f}× (min {min(ratios):.2f}×, max "
                 f"{max(ratios):.2f}×) over the {len(ratios)} cells where both reach the target.")
    return text


def _systems_table(doc: dict[str, Any]) -> str:
    rows = []
    for s in doc["systems"]:
        b = s.get("build") or {}
        extra = b.get("extra") or {}
        status = ("error: " + s["error"]) if "error" in s else (
            "unavailable: " + s["unavailable"] if "unavailable" in s else "ok")
        peak, start = s.get("peak_rss_bytes"), s.get("rss_start_bytes")
        server = (s.get("final_stats") or {}).get("server_peak_rss_bytes")
        rows.append({
            "system": s["system"], "status": status,
            "build_s": (f"{b['seconds']:.1f}" + (" (cached)" if b.get("cached") else "")
                        if b else "–"),
            "disk_MB": (f"{b['disk_bytes'] / MB:.0f}" if b.get("disk_bytes") else
                        ("in memory" if b.get("in_memory") else "–")),
            "peak_RSS_MB": f"{peak / MB:.0f}" if peak else "–",
            "RSS_over_start_MB": f"{(peak - start) / MB:.0f}" if peak and start else "–",
            "server_peak_RSS_MB": f"{server / MB:.0f}" if server else "–",
            "build_threads": extra.get("threads", "–"),
            "load_avg": (f"{s['loadavg_start']:.1f} → {s['loadavg_end']:.1f}"
                         if "loadavg_end" in s else "–"),
        })
    return markdown_table(rows, ["system", "status", "build_s", "disk_MB", "peak_RSS_MB",
                                 "RSS_over_start_MB", "server_peak_RSS_MB", "build_threads",
                                 "load_avg"])


def _bucket_tables(doc: dict[str, Any], workload: str) -> list[str]:
    out: list[str] = []
    batch = {(r["system"], r["bucket"], r["k"]): r for r in _tuned(doc, "batch")
             if r["workload"] == workload}
    threads: dict[tuple[str, str, int], dict[int, float]] = defaultdict(dict)
    for r in _tuned(doc, "threads"):
        if r["workload"] == workload:
            threads[(r["system"], r["bucket"], r["k"])][int(r["threads"])] = r["qps"]
    tuned = [r for r in _tuned(doc) if r["workload"] == workload]
    for k in sorted({int(r["k"]) for r in tuned}):
        for b in doc["workload"]["buckets"]:
            rows = sorted((r for r in tuned if r["bucket"] == b["name"] and r["k"] == k),
                          key=lambda r: -r["qps"])
            if not rows:
                continue
            out += ["", f"#### bucket {b['name']}, k = {k}", ""]
            table = []
            for r in rows:
                key = (r["system"], r["bucket"], k)
                t = threads.get(key, {})
                table.append({
                    "system": r["system"], "tuned params": _params(r["params"]),
                    f"recall@{k}": r["recall"], "tune recall": r.get("tune_recall"),
                    "QPS": r["qps"], "p50 ms": r["p50_ms"], "p95 ms": r["p95_ms"],
                    "p99 ms": r["p99_ms"], "runs": r["runs"],
                    "batch QPS": batch[key]["qps"] if key in batch else "–",
                    "threads QPS": ", ".join(f"{n}: {q:,.0f}" for n, q in sorted(t.items()))
                    or "–",
                    "short": r.get("short_results", 0),
                    "plans": ", ".join(f"{s} {c}" for s, c in (r.get("strategies") or {}).items())
                    or "",
                })
            out.append(markdown_table(table, list(table[0].keys())))
    return out


def render_markdown(doc: dict[str, Any], pngs: dict[str, str]) -> str:
    wl, ds, proto = doc["workload"], doc["dataset"], doc["workload"]["protocol"]
    target = float(proto["target_recall"])
    extra = ", ".join(f"{k}={v}" for k, v in ds.items() if k not in ("kind", "n", "dim"))
    timing = doc.get("timing", "one system after another")
    intro = (
        f"Dataset `{ds.get('kind')}`: {ds['n']:,} × {ds['dim']}, {ds['query_vectors']:,} query "
        f"vectors ({extra}). Total runtime {doc['runtime_seconds'] / 60:.1f} min; systems "
        f"isolated: {doc.get('isolation')}; timing: {timing}."
    )
    protocol = (
        f"Protocol: per workload × bucket, the tuner runs each system's sweep on the first "
        f"{proto['tune_queries']} queries (one run each) and picks the fastest setting with "
        f"recall@k ≥ {target}; that setting is then measured on the held-out rest "
        f"{proto['runs']} times (median; fewer if that would exceed the "
        f"{proto['point_budget_s']} s point budget — see `runs`), single-threaded, one query "
        f"at a time, after {proto['warmup']} warm-up queries. Batch QPS = one `search_batch` "
        f"of the held-out set; threads QPS = N client threads calling `search` concurrently."
    )
    rss_note = (
        "Peak RSS is the VmHWM of the system's own (forked) process: it includes the shared "
        "dataset the harness holds (its RSS at the fork is subtracted in `RSS_over_start`); "
        "for `sievedb_grpc` the server runs in a separate process, reported in "
        "`server_peak_RSS`. A server a peer starts on its own (PostgreSQL for pgvector) is "
        "not counted (milvus-lite 3 runs in-process). `load_avg` is the 1-minute load average when the system's "
        "process started and ended (2 cores: above ~2 the machine was shared with other work)."
    )
    out = [intro, "", protocol, ""]
    for part in doc.get("merged_from", []):
        env = part["environment"]
        out.append(f"- merged run: `{part['command']}` at {env.get('timestamp_utc')} "
                   f"(sievedb @ `{(env.get('git_sha') or '?')[:10]}`): "
                   f"{', '.join(part['systems'])}")
    out += ["", "## Systems", "", _systems_table(doc), "", rss_note, ""]
    summary = summary_rows(doc)
    for k in sorted({r["k"] for r in summary}):
        rows = [r for r in summary if r["k"] == k]
        out += [f"## Summary, k = {k} (winner at held-out recall@{k} ≥ {target})", ""]
        out.append(markdown_table(
            [{**r, "ratio": (f"{r['ratio']:.2f}× over {r['runner_up']}"
                             if r["runner_up"] != "–" else "–"),
              "sievedb_vs_best_other": (f"{r['sievedb_vs_best_other']:.2f}× vs {r['best_other']}"
                                        if r["sievedb_vs_best_other"] == r["sievedb_vs_best_other"]
                                        else f"– ({r['best_other']})")}
             for r in rows],
            ["workload", "bucket", "allowed", "winner", "winner_qps", "ratio",
             "sievedb_recall", "sievedb_qps", "sievedb_vs_best_other"],
        ))
        out += ["", _tally(rows), ""]
    for wname, wdef in wl["workloads"].items():
        out += ["", f"## Workload `{wname}` ({wdef['family']})", ""]
        binfo = [b for b in doc["buckets"] if b["workload"] == wname]
        out.append(markdown_table(
            [{**b, "allowed_median": _whole(b["allowed_median"]),
              "example": f"`{b['example']}`" if b["example"] else "–"} for b in binfo],
            ["bucket", "queries", "tune_queries", "distinct_filters", "allowed_median",
             "allowed_min", "allowed_max", "example"]))
        if wname in pngs:
            out += ["", f"![recall vs QPS, {wname}]({pngs[wname]})"]
        out += _bucket_tables(doc, wname)
    return "\n".join(out)


def plot_workload(doc: dict[str, Any], workload: str, path: Path) -> bool:
    """Recall vs single-thread QPS on the held-out queries; one panel per bucket × k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["rows"] if r["workload"] == workload and r.get("mode") == "single"
            and r.get("phase") in ("tuned", "curve")]
    if not rows:
        return False
    ks = sorted({int(r["k"]) for r in rows})
    buckets = [b["name"] for b in doc["workload"]["buckets"]
               if any(r["bucket"] == b["name"] for r in rows)]
    systems = list(dict.fromkeys(s["system"] for s in doc["systems"]))
    colors = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(systems)}
    target = float(doc["workload"]["protocol"]["target_recall"])
    fig, axes = plt.subplots(len(ks), len(buckets), figsize=(3.4 * len(buckets), 3.0 * len(ks)),
                             squeeze=False)
    for ri, k in enumerate(ks):
        for ci, b in enumerate(buckets):
            ax = axes[ri][ci]
            for s in systems:
                pts = sorted((r for r in rows if r["system"] == s and r["bucket"] == b
                              and int(r["k"]) == k), key=lambda r: r["recall"])
                if not pts:
                    continue
                ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], "-o", ms=3,
                        lw=1, color=colors[s], label=s)
                best = [p for p in pts if p["phase"] == "tuned"]
                ax.plot([p["recall"] for p in best], [p["qps"] for p in best], "*", ms=11,
                        color=colors[s])
            ax.axvline(target, color="grey", ls="--", lw=0.8)
            ax.set_yscale("log")
            ax.set_title(f"{b}, k={k}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            if ri == len(ks) - 1:
                ax.set_xlabel("recall@k (held-out)")
            if ci == 0:
                ax.set_ylabel("QPS, 1 thread (log)")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper center", ncol=min(7, len(labels)), fontsize=8,
               bbox_to_anchor=(0.5, 1.02))
    fig.suptitle(f"{workload}: recall vs QPS per selectivity bucket (★ = tuned setting; up "
                 f"and right is better)", y=1.07, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return True


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One document from several runs of the same workload (e.g. the baselines, then peers
    added later): systems and rows concatenated; each run's command and environment kept.

    The query sets and ground truth are the same by construction (seeded, same dataset), which
    is checked (a later run may cover a subset of the workloads, or of k); the runs were made
    at different times, which the report states.
    """
    first = docs[0]
    for d in docs[1:]:  # a later run may cover fewer workloads, never other query sets
        if d["dataset"] != first["dataset"] or any(b not in first["buckets"]
                                                   for b in d["buckets"]):
            raise ValueError("can only merge runs of the same dataset and query sets")
    seen: set[str] = set()
    systems, rows = [], []
    for d in docs:
        names = {s["system"] for s in d["systems"]} - seen
        systems += [s for s in d["systems"] if s["system"] in names]
        rows += [r for r in d["rows"] if r["system"] in names]
        seen |= names
    return {
        **first,
        "command": " ; ".join(d["command"] for d in docs),
        "runtime_seconds": sum(d["runtime_seconds"] for d in docs),
        "merged_from": [{"command": d["command"], "environment": d["environment"],
                         "systems": [s["system"] for s in d["systems"]]} for d in docs],
        "systems": systems,
        "rows": rows,
    }


def write(doc: dict[str, Any], name: str, results_dir: Path) -> tuple[Path, Path]:
    """`<name>.json`, `<name>.md` and `<name>_<workload>.png` under `results_dir`."""
    results_dir.mkdir(parents=True, exist_ok=True)
    pngs = {}
    for wname in doc["workload"]["workloads"]:
        png = results_dir / f"{name}_{wname}.png"
        if plot_workload(doc, wname, png):
            pngs[wname] = png.name
    return write_results(name, doc, render_markdown(doc, pngs), results_dir)
