"""The fuzz campaign: the CI fuzz suites with many more examples, plus atheris on the parser.

    flock /tmp/sievedb-heavy.lock python -m benchmarks.fuzz_campaign \\
        --parser-examples 5000 --rpc-examples 300 --atheris-runs 300000 --seed 20261128

1. `pytest tests/test_fuzz_parser.py tests/test_fuzz_rpc.py` with
   `SIEVEDB_FUZZ_EXAMPLES` (examples per Hypothesis target, random not derandomized) and
   `--hypothesis-seed`; the RPC targets also record the status code of every call.
2. `benchmarks/fuzz_atheris_parser.py` (coverage-guided, libFuzzer) for `--atheris-runs`
   inputs, when atheris is installed.

Writes `benchmarks/results/fuzz_campaign.{json,md}`: the command, examples run per target
(from Hypothesis' statistics), failures, status-code counts per RPC, and the atheris run.
The bugs found and fixed by earlier runs are listed in `FIXED` below and in the report.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO_ROOT, command_line, environment, markdown_table, write_results

FUZZ_MODULES = ["tests/test_fuzz_parser.py", "tests/test_fuzz_rpc.py"]

# Real bugs the fuzz suites (and the limits work that prompted them) found, each now fixed
# and pinned by a regression test.
FIXED: list[dict[str, str]] = [
    {
        "bug": "string point ids of 511-512 UTF-8 bytes (then the documented maximum) made "
        "LMDB refuse the key: INTERNAL on upsert/get/delete",
        "fix": "ids are 1-510 bytes (a tag byte + id must fit LMDB's 511-byte keys); "
        "has_id in filters checks the same",
        "test": "tests/test_limits.py::test_string_point_id_bytes",
    },
    {
        "bug": "an indexed keyword value over ~500 bytes (or a long field name) overflowed "
        "the posting-list key: INTERNAL on upsert and on update_schema's backfill",
        "fix": "indexed keyword values are at most 240 UTF-8 bytes and keys 256 bytes; "
        "RESOURCE_EXHAUSTED naming the limit",
        "test": "tests/test_limits.py::test_indexed_keyword_bytes, "
        "test_indexing_a_field_with_long_values_is_refused",
    },
    {
        "bug": "request bytes that do not decode as the method's message (random bytes, "
        "invalid UTF-8 in a string) were answered INTERNAL by grpcio",
        "fix": "a tolerant request deserializer in the interceptor: INVALID_ARGUMENT",
        "test": "tests/test_fuzz_rpc.py::test_random_and_mutated_bytes, "
        "tests/test_fuzz_regressions.py",
    },
    {
        "bug": "the parser took non-decimal digits such as '²' for numbers and crashed in "
        "int() (ValueError), and integers over 4300 digits hit Python's int() limit",
        "fix": "ASCII digits only; integers longer than 20 digits are out of range",
        "test": "tests/test_fuzz_regressions.py",
    },
    {
        "bug": "model ids of 128 four-byte characters (emoji) overflowed the LMDB key `m:<id>` "
        "(INTERNAL) and path-like ids ('../x') were accepted",
        "fix": "model ids are [A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}",
        "test": "tests/test_limits.py::test_path_like_or_control_model_ids_are_refused, "
        "tests/test_fuzz_regressions.py",
    },
]


def _statistics(output: str) -> dict[str, dict[str, int]]:
    """Per test id: passing / failing / invalid examples, from --hypothesis-show-statistics."""
    stats: dict[str, dict[str, int]] = defaultdict(lambda: Counter())  # type: ignore[arg-type]
    current = None
    for line in output.splitlines():
        head = re.match(r"^(tests/\S+::\S+):\s*$", line.strip())
        if head:
            current = head.group(1)
            continue
        counts = re.search(r"(\d+) passing, (\d+) failing, and (\d+) invalid", line)
        if counts and current:
            for key, value in zip(("passing", "failing", "invalid"), counts.groups()):
                stats[current][key] += int(value)
    return {k: dict(v) for k, v in stats.items()}


def _failures(output: str) -> list[str]:
    return sorted(set(re.findall(r"^FAILED (\S+)", output, flags=re.MULTILINE)))


def run_hypothesis(examples: int, rpc_examples: int, seed: int, work: Path) -> dict[str, Any]:
    status_file = work / "status-codes.txt"
    results: dict[str, Any] = {"targets": {}, "failures": [], "status_codes": {}}
    env = {**os.environ, "SIEVEDB_FUZZ_STATUS_FILE": str(status_file)}
    for module, n in ((FUZZ_MODULES[0], examples), (FUZZ_MODULES[1], rpc_examples)):
        env["SIEVEDB_FUZZ_EXAMPLES"] = str(n)
        cmd = [sys.executable, "-m", "pytest", "-q", module, "-p", "no:cacheprovider",
               f"--hypothesis-seed={seed}", "--hypothesis-show-statistics", "-rf"]
        started = time.perf_counter_ns()
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
        seconds = (time.perf_counter_ns() - started) / 1e9
        output = proc.stdout + proc.stderr
        (work / f"{Path(module).stem}.log").write_text(output)
        results["targets"].update(_statistics(output))
        results["failures"].extend(_failures(output))
        results.setdefault("runs", []).append(
            {"module": module, "examples_per_target": n, "seconds": round(seconds, 1),
             "exit_code": proc.returncode, "command": " ".join(cmd[2:])}
        )
    codes: dict[str, Counter[str]] = defaultdict(Counter)
    if status_file.exists():
        for line in status_file.read_text().splitlines():
            method, code = line.split()
            codes[method][code] += 1
    results["status_codes"] = {m: dict(c) for m, c in sorted(codes.items())}
    return results


def run_atheris(runs: int, seed: int, work: Path) -> dict[str, Any]:
    try:
        import atheris  # noqa: F401
    except ImportError as exc:
        return {"ran": False, "why": f"atheris is not installed: {exc}"}
    cmd = [sys.executable, "-m", "benchmarks.fuzz_atheris_parser", f"-runs={runs}",
           f"-seed={seed}", f"-artifact_prefix={work}/", "-print_final_stats=1"]
    started = time.perf_counter_ns()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    seconds = (time.perf_counter_ns() - started) / 1e9
    output = proc.stdout + proc.stderr
    (work / "atheris.log").write_text(output)
    done = re.findall(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+)", output)
    crashes = sorted(p.name for p in work.glob("crash-*"))
    return {
        "ran": True,
        "command": " ".join(["python", *cmd[1:]]),
        "runs": int(done[-1][0]) if done else None,
        "coverage_edges": int(done[-1][1]) if done else None,
        "features": int(done[-1][2]) if done else None,
        "seconds": round(seconds, 1),
        "exit_code": proc.returncode,
        "crashes": crashes,
        "tail": output.strip().splitlines()[-3:],
    }


def _markdown(doc: dict[str, Any]) -> str:
    hyp, ath = doc["hypothesis"], doc["atheris"]
    rows = [
        {"target": t.split("::", 1)[1], "module": t.split("::")[0].split("/")[-1],
         "passing": s.get("passing", 0), "failing": s.get("failing", 0),
         "invalid": s.get("invalid", 0)}
        for t, s in sorted(hyp["targets"].items())
    ]
    total = sum(r["passing"] + r["failing"] for r in rows)
    out = [
        "",
        "## Hypothesis targets",
        "",
        (
            f"{len(rows)} targets, {total} examples in all; failures: "
            f"{', '.join(hyp['failures']) or 'none'}."
        ),
        "",
        markdown_table(
            hyp["runs"],
            ["module", "examples_per_target", "seconds", "exit_code"],
        ),
        "",
        markdown_table(rows, ["module", "target", "passing", "failing", "invalid"]),
        "",
        "## Status codes per RPC (every fuzzed call; INTERNAL/UNKNOWN would be a failure)",
        "",
        markdown_table(
            [{"rpc": m, "codes": ", ".join(f"{k} {v}" for k, v in sorted(c.items()))}
             for m, c in hyp["status_codes"].items()],
            ["rpc", "codes"],
        ),
        "",
        "## atheris (coverage-guided) on the parser and the filter codec",
        "",
    ]
    if ath.get("ran"):
        out += [
            f"Command: `{ath['command']}`",
            "",
            (
                f"{ath['runs']} inputs in {ath['seconds']} s, {ath['coverage_edges']} "
                f"coverage edges, {ath['features']} features; exit code {ath['exit_code']}; "
                f"crashes: {', '.join(ath['crashes']) or 'none'}."
            ),
        ]
    else:
        out.append(f"Not run: {ath['why']}")
    out += [
        "",
        "## Bugs found and fixed",
        "",
        markdown_table(doc["fixed"], ["bug", "fix", "test"]),
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parser-examples", type=int, default=5000,
                        help="examples per parser/codec target")
    parser.add_argument("--rpc-examples", type=int, default=300,
                        help="examples per RPC target (2 targets per method)")
    parser.add_argument("--atheris-runs", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--name", default="fuzz_campaign")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sievedb-fuzz-") as tmp:
        work = Path(tmp)
        hyp = run_hypothesis(args.parser_examples, args.rpc_examples, args.seed, work)
        ath = run_atheris(args.atheris_runs, args.seed, work)
        doc = {
            "command": command_line(),
            "parameters": vars(args),
            "environment": environment(),
            "hypothesis": hyp,
            "atheris": ath,
            "fixed": FIXED,
        }
        write_results(args.name, doc, _markdown(doc))
        failed = bool(hyp["failures"]) or bool(ath.get("crashes"))
    print(f"wrote benchmarks/results/{args.name}.md; failures: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
