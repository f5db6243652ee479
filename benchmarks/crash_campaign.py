"""Crash campaign: many `kill -9` points during mixed writes, each followed by a full check.

    python -m benchmarks.crash_campaign --kill-points 100 --seed 7

One data folder lives through every round. A round starts `sievedb serve` as a subprocess on
a loopback port, checks the previous round's outcome through it, then runs a seeded mixed
workload from several writer threads (new points, attribute updates, deletes by id and by
filter, bulk loads over the streaming RPC), each recording every acknowledged write in its
`crash_journal.WriterJournal`, and SIGKILLs the server at a seeded moment:

* ``random``         after a random delay, wherever the writers are;
* ``mid-upsert``     while an Upsert / Delete RPC is on the wire;
* ``mid-bulk-load``  while a bulk load stream has chunks acknowledged and more in flight;
* ``mid-indexing``   after a bulk load returned, while the background indexer lags
                     (`indexed_count < point_count` observed just before the kill);
* ``after-ack``      from the writer thread, right after an acknowledgement arrived;
* ``mid-checkpoint`` while the periodic checkpoint is writing the graph (its temporary
                     file exists).

With the server down, the data folder is opened in-process: `core.verify.find_problems`
(live set, posting lists and numeric indexes against a recomputation from LMDB, graph
membership) plus a stricter check that the vector file and the HNSW graph hold exactly
LMDB's vector for every live label and that no dead label is searchable; rows left pending
by the kill must get indexed. The next server start then settles the in-flight writes
(`WriterJournal.resolve`), and demands that the server hold exactly the journal (lost
acknowledged writes are counted apart from other inconsistencies), that counts and filtered
counts agree, that exact search returns acknowledged points at distance 0 and ANN search
finds them, and that resumable bulk loads report the rows that landed. After the last round
the server stops cleanly and `sievedb verify` must pass.

The schedule (op mix, sizes, kill moments, delays) is seeded; thread interleaving is not,
which is the point. Results: `benchmarks/results/<out>.{json,md}` via `harness`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.crash_journal import Op, State, WriterJournal, compare, state_of
from benchmarks.harness import command_line, environment, markdown_table, write_results

__all__ = ["MOMENTS", "CampaignConfig", "main", "run_campaign"]

log = logging.getLogger("crash_campaign")

NAME = "crash"
TAGS = ("a", "b", "c", "d", "e", "f")
MOMENTS = ("random", "mid-upsert", "mid-bulk-load", "mid-indexing", "after-ack", "mid-checkpoint")
SCHEMA = {"owner": "integer", "tag": "keyword", "ver": "integer"}


@dataclass(frozen=True)
class CampaignConfig:
    kill_points: int = 100
    seed: int = 0
    dim: int = 16
    writers: int = 3
    target_points: int = 1500  # per writer: above it deletes dominate, below a third inserts
    max_batch: int = 48  # points per Upsert / Delete RPC
    bulk_rows: tuple[int, int] = (600, 2500)
    bulk_chunk: tuple[int, int] = (100, 400)
    round_s: tuple[float, float] = (0.3, 2.5)  # workload time before a "random" kill
    checkpoint_interval_s: float = 1.0  # frequent checkpoints: kills land in them too
    search_probes: int = 20
    moments: tuple[str, ...] = MOMENTS  # cycled in a seeded order


# --- server processes ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProc:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started_s: float

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_server(data_dir: Path, logs: Path, tag: str, cfg: CampaignConfig) -> ServerProc:
    """`sievedb serve` in a subprocess; returns once its health check says SERVING."""
    from sievedb import Client

    port = _free_port()
    log_path = logs / f"server-{tag}.log"
    cmd = [
        sys.executable, "-m", "sievedb.cli", "serve", "--data-dir", str(data_dir),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--checkpoint-interval", str(cfg.checkpoint_interval_s),
    ]
    t0 = time.perf_counter_ns()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    with Client(f"127.0.0.1:{port}", timeout=1.0) as probe:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log_path.read_text()}")
            try:
                probe.list_collections()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    proc.kill()
                    raise TimeoutError(f"server not serving: {log_path.read_text()}") from None
                time.sleep(0.05)
    return ServerProc(proc, port, log_path, (time.perf_counter_ns() - t0) / 1e9)


# --- the workload ----------------------------------------------------------------------------


@dataclass
class Controller:
    """Shared between the round's driver and its writers: kill switch and signals."""

    server: ServerProc
    killed: threading.Event = field(default_factory=threading.Event)
    want_bulk: threading.Event = field(default_factory=threading.Event)
    one_chunk: bool = False  # the requested bulk load is one big chunk (indexer must lag)
    bulk_done: threading.Event = field(default_factory=threading.Event)
    kill_on_ack: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    kill_ns: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def kill(self) -> bool:
        with self._lock:
            if self.killed.is_set():
                return False
            self.killed.set()  # before the signal: an error seen while unset is a real error
            self.kill_ns = time.perf_counter_ns()
            self.server.proc.send_signal(signal.SIGKILL)
            return True

    def acked(self) -> None:
        if self.kill_on_ack.is_set():
            self.kill()


class Writer(threading.Thread):
    """Runs seeded random write ops against the server until the kill."""

    def __init__(
        self, journal: WriterJournal, ctrl: Controller, cfg: CampaignConfig, seed: int,
        round_no: int, bulk_writer: bool,
    ) -> None:
        super().__init__(name=f"writer-{journal.writer}", daemon=True)
        self.journal = journal
        self.ctrl = ctrl
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.round_no = round_no
        self.bulk_writer = bulk_writer
        self.phase: str | None = None
        self.done: Counter[str] = Counter()

    # -- planning ----------------------------------------------------------------------------

    def _attrs(self) -> dict[str, Any]:
        self.journal.version += 1
        return {
            "owner": self.journal.writer,
            "tag": TAGS[int(self.rng.integers(len(TAGS)))],
            "ver": self.journal.version,
        }

    def _vectors(self, n: int) -> np.ndarray:
        return self.rng.standard_normal((n, self.cfg.dim)).astype(np.float32)

    def _existing(self, n: int) -> list[str]:
        ids = list(self.journal.points)
        if not ids:
            return []
        pick = self.rng.choice(len(ids), size=min(n, len(ids)), replace=False)
        return [ids[i] for i in sorted(pick.tolist())]

    def plan(self) -> tuple[Op, dict[str, Any]]:
        """The next op and what the RPC needs to send it."""
        if self.bulk_writer and self.ctrl.want_bulk.is_set():
            self.ctrl.want_bulk.clear()
            return self._plan_bulk(one_chunk=self.ctrl.one_chunk)
        size = len(self.journal.points)
        weights = {"upsert": 3.0, "update": 2.0, "delete": 1.5, "delete-filter": 1.0, "bulk": 0.6}
        if size > self.cfg.target_points:
            weights["delete"] *= 4
            weights["delete-filter"] *= 4
            weights["bulk"] = 0.0
        elif size < self.cfg.target_points // 3:
            weights["upsert"] *= 2
            weights["bulk"] *= 2
        kinds = list(weights)
        p = np.asarray([weights[k] for k in kinds])
        kind = kinds[int(self.rng.choice(len(kinds), p=p / p.sum()))]
        if kind == "bulk":
            return self._plan_bulk()
        n = int(self.rng.integers(1, self.cfg.max_batch + 1))
        if kind in ("update", "delete", "delete-filter") and not self.journal.points:
            kind = "upsert"
        if kind == "upsert":
            ids = self.journal.new_ids(n)
        elif kind in ("update", "delete"):
            ids = self._existing(n)
        if kind in ("upsert", "update"):
            vecs = self._vectors(len(ids))
            if kind == "update":  # attribute update; every other point also gets a new vector
                for i, pid in enumerate(ids):
                    if i % 2 == 0:
                        vecs[i] = np.frombuffer(self.journal.points[pid][0], dtype="<f4")
            attrs = [self._attrs() for _ in ids]
            chunk: dict[str, State | None] = {
                pid: state_of(v, a) for pid, v, a in zip(ids, vecs, attrs)
            }
            return Op(kind, [chunk]), {"ids": ids, "vectors": vecs, "attributes": attrs}
        if kind == "delete":
            return Op(kind, [dict.fromkeys(ids)]), {"ids": ids}
        tag = TAGS[int(self.rng.integers(len(TAGS)))]
        below = self.journal.version - int(self.rng.integers(0, max(self.journal.version, 1)))
        expr = f'owner == {self.journal.writer} and tag == "{tag}" and ver < {below}'
        doomed = [
            pid for pid, (_, items) in self.journal.points.items()
            if dict(items)["tag"] == tag and dict(items)["ver"] < below
        ]
        return Op("delete-filter", [dict.fromkeys(doomed)]), {"filter": expr}

    def _plan_bulk(self, one_chunk: bool = False) -> tuple[Op, dict[str, Any]]:
        lo, hi = self.cfg.bulk_rows
        n = hi if one_chunk else int(self.rng.integers(lo, hi + 1))
        chunk = n if one_chunk else int(
            self.rng.integers(self.cfg.bulk_chunk[0], self.cfg.bulk_chunk[1] + 1)
        )
        overwrite = self._existing(n // 10)  # some rows overwrite points already in the graph
        ids = overwrite + self.journal.new_ids(n - len(overwrite))
        order = self.rng.permutation(len(ids))
        ids = [ids[i] for i in order.tolist()]
        vecs = self._vectors(len(ids))
        self.journal.version += 1
        tags = self.rng.integers(len(TAGS), size=len(ids)).tolist()
        version = self.journal.version
        attrs = [{"owner": self.journal.writer, "tag": TAGS[t], "ver": version} for t in tags]
        chunks: list[dict[str, State | None]] = []
        rows: list[int] = []
        for start in range(0, len(ids), chunk):
            stop = min(start + chunk, len(ids))
            chunks.append({
                ids[i]: state_of(vecs[i], attrs[i]) for i in range(start, stop)
            })
            rows.append(stop)
        load_id = f"r{self.round_no}-w{self.journal.writer}-v{version}"
        op = Op("bulk", chunks, load_id=load_id, chunk_rows=rows)
        return op, {"ids": ids, "vectors": vecs, "attributes": attrs, "batch_size": chunk}

    # -- running -----------------------------------------------------------------------------

    def run(self) -> None:
        from sievedb import Client

        with Client(self.ctrl.server.target, timeout=30.0) as client:
            while not self.ctrl.killed.is_set():
                op, args = self.plan()
                self.journal.begin(op)
                self.phase = op.kind
                try:
                    self._send(client, op, args)
                except Exception as exc:  # noqa: BLE001 - the kill makes the call fail
                    if not self.ctrl.killed.is_set():
                        self.ctrl.errors.append(f"writer {self.journal.writer} {op.kind}: {exc}")
                        self.ctrl.kill()
                    return
                finally:
                    self.phase = None
                self.done[op.kind] += 1
                if op.kind == "bulk":
                    self.ctrl.bulk_done.set()

    def _send(self, client: Any, op: Op, args: dict[str, Any]) -> None:
        if op.kind in ("upsert", "update"):
            client.upsert(NAME, args["ids"], args["vectors"], args["attributes"],
                          batch_size=len(args["ids"]))
        elif op.kind in ("delete", "delete-filter"):
            if "filter" in args:
                reply = client.delete(NAME, filter=args["filter"])
            else:
                reply = client.delete(NAME, args["ids"])
            if reply.deleted != len(op.chunks[0]):
                self.ctrl.errors.append(
                    f"writer {self.journal.writer} {op.kind}: server deleted {reply.deleted}, "
                    f"the journal expected {len(op.chunks[0])}"
                )
        else:
            def progress(rows: int) -> None:
                if rows != len(op.chunks[op.acked]):
                    self.ctrl.errors.append(f"bulk ack of {rows} rows for a chunk of "
                                            f"{len(op.chunks[op.acked])}")
                self.journal.ack_chunk(op)
                self.ctrl.acked()

            client.bulk_load(NAME, args["vectors"], args["ids"], args["attributes"],
                             batch_size=args["batch_size"], load_id=op.load_id,
                             progress=progress, timeout=60.0)
            return
        self.journal.ack_chunk(op)
        self.ctrl.acked()


def _wait_for(pred: Any, ctrl: Controller, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not ctrl.killed.is_set():
        if pred():
            return True
        time.sleep(0.0005)
    return False


def run_round(
    server: ServerProc, journals: list[WriterJournal], cfg: CampaignConfig, round_no: int,
    moment: str, rng: np.random.Generator, data_dir: Path,
) -> dict[str, Any]:
    """Run the workload and kill the server at `moment`; returns the round's record."""
    from sievedb import Client

    ctrl = Controller(server)
    writers = [
        Writer(j, ctrl, cfg, int(rng.integers(2**31)), round_no, bulk_writer=(j.writer == 0))
        for j in journals
    ]
    delay = float(rng.uniform(*cfg.round_s))
    jitter = float(rng.uniform(0, 0.004))
    t0 = time.perf_counter_ns()
    for w in writers:
        w.start()
    note = ""
    budget = cfg.round_s[1] * 4 + 10
    if moment == "random":
        ctrl.killed.wait(delay)
    elif moment == "mid-upsert":
        ctrl.killed.wait(delay / 2)
        hit = _wait_for(
            lambda: any(w.phase in ("upsert", "update", "delete", "delete-filter")
                        for w in writers), ctrl, budget)
        time.sleep(jitter)
        note = "" if hit else "no upsert seen"
    elif moment == "mid-bulk-load":
        ctrl.want_bulk.set()
        hit = _wait_for(
            lambda: writers[0].phase == "bulk" and writers[0].journal.inflight is not None
            and writers[0].journal.inflight.acked >= 1, ctrl, budget)
        time.sleep(jitter * 3)
        note = "" if hit else "no bulk load in flight seen"
    elif moment == "mid-indexing":
        ctrl.one_chunk = True  # the graph takes a while to catch up with one big chunk
        ctrl.killed.wait(delay / 4)
        deadline = time.monotonic() + budget
        with Client(server.target, timeout=10.0) as probe:
            while time.monotonic() < deadline and not ctrl.killed.is_set():
                ctrl.bulk_done.clear()
                ctrl.want_bulk.set()
                if not ctrl.bulk_done.wait(timeout=max(deadline - time.monotonic(), 0)):
                    break
                info = probe.describe_collection(NAME)
                if info.indexed_count < info.point_count:
                    note = f"indexed {info.indexed_count} of {info.point_count}"
                    break
        note = note or "indexer never seen lagging"
    elif moment == "mid-checkpoint":
        ctrl.killed.wait(delay / 4)
        tmp = data_dir / "collections" / NAME / "index.hnsw.tmp"
        hit = _wait_for(tmp.exists, ctrl, budget)
        note = "" if hit else "no checkpoint seen"
    elif moment == "after-ack":
        ctrl.killed.wait(delay / 2)
        ctrl.kill_on_ack.set()
        ctrl.killed.wait(budget)
    ctrl.kill()
    server.proc.wait(timeout=60)
    for w in writers:
        w.join(timeout=120)
    inflight = [j.inflight for j in journals if j.inflight is not None]
    return {
        "round": round_no,
        "moment": moment,
        "kill_after_s": round((ctrl.kill_ns - t0) / 1e9, 3),
        "note": note,
        "acked_ops": dict(sum((w.done for w in writers), Counter())),
        "inflight": [
            f"{op.kind} ({op.acked}/{len(op.chunks)} chunks acked)" for op in inflight
        ],
        "errors": list(ctrl.errors),
    }


# --- checks ----------------------------------------------------------------------------------


def graph_vector_problems(coll: Any) -> list[str]:
    """Vector file and HNSW graph hold LMDB's vector for each live label; dead ones are gone."""
    problems: list[str] = []
    graph_labels = set(coll.graph.labels().tolist())
    live: set[int] = set()
    with coll.store.read() as txn:
        for labels, vecs in coll.store.iter_vectors(txn, coll.dim):
            live.update(labels.tolist())
            if not np.array_equal(coll.vectors.data[labels], vecs):
                problems.append(f"vector file differs from LMDB for {len(labels)}-label chunk")
            in_graph = np.asarray([lb in graph_labels for lb in labels.tolist()])
            pending = np.asarray([lb in coll.pending for lb in labels.tolist()], dtype=bool)
            if (~in_graph & ~pending).any():
                problems.append(f"{int((~in_graph & ~pending).sum())} live labels not in graph")
            sel = labels[in_graph & ~pending]
            if sel.size:
                got = np.asarray(coll.graph.index.get_items(sel.tolist()), dtype=np.float32)
                if not np.array_equal(got, vecs[in_graph & ~pending]):
                    problems.append("the HNSW graph holds a stale vector for a live label")
    for label in sorted(graph_labels - live):
        try:
            coll.graph.index.get_items([label])
        except RuntimeError:
            continue  # marked deleted: not searchable
        problems.append(f"dead label {label} is still searchable in the graph")
    return problems


def check_offline(data_dir: Path) -> dict[str, Any]:
    """Open the data folder in-process (server down) and run the verify checks."""
    from sievedb_server.core.engine import Engine
    from sievedb_server.core.verify import find_problems

    t0 = time.perf_counter_ns()
    engine = Engine(data_dir, checkpoint_interval_s=3600)
    try:
        coll = engine.collection(NAME)
        open_s = (time.perf_counter_ns() - t0) / 1e9
        pending = coll.pending_count
        problems = [str(p) for p in find_problems(coll)]
        indexed = coll.wait_indexed(timeout=300)
        problems += [str(p) for p in find_problems(coll)]
        problems += graph_vector_problems(coll)
        info = coll.info()
        if not indexed or info.indexed_count != info.point_count:
            problems.append(
                f"pending rows not indexed: {info.indexed_count} of {info.point_count}"
            )
    finally:
        engine.close(checkpoint=False)  # leave the folder exactly as the crash left it
    return {"open_s": round(open_s, 3), "pending_at_open": pending,
            "points": info.point_count, "problems": problems}


def dump(client: Any) -> dict[str, State]:
    return {
        p.id: state_of(p.vector, p.attributes)
        for p in client.iter_points(NAME, page_size=5000, with_vectors=True)
    }


def check_online(
    client: Any, journals: list[WriterJournal], cfg: CampaignConfig, rng: np.random.Generator
) -> dict[str, Any]:
    """Settle in-flight writes, then demand the server hold exactly the journal."""
    observed = dump(client)
    problems: list[str] = []
    landed: list[str] = []
    for journal in journals:
        op = journal.inflight
        n, found = journal.resolve(observed)
        problems += found
        if op is None:
            continue
        landed.append(f"{op.kind}: {n} of {len(op.chunks) - op.acked} unacked chunks landed")
        if op.kind == "bulk":
            status = client.load_status(NAME, op.load_id)
            done = op.acked + n
            want = op.chunk_rows[done - 1] if done else 0
            if status.rows_committed != want:
                problems.append(f"load {op.load_id}: rows_committed {status.rows_committed} "
                                f"!= {want} (rows of the chunks that landed)")
    checked, lost, wrong = compare(journals, observed)
    problems += wrong
    expected = {pid: st for j in journals for pid, st in j.points.items()}
    if client.count(NAME) != len(expected):
        problems.append(f"count {client.count(NAME)} != journal {len(expected)}")
    for journal in journals:
        got = client.count(NAME, f"owner == {journal.writer}")
        if got != len(journal.points):
            problems.append(f"count(owner == {journal.writer}) {got} != {len(journal.points)}")
    for tag in TAGS:
        want = sum(1 for _, items in expected.values() if dict(items)["tag"] == tag)
        got = client.count(NAME, f'tag == "{tag}"')
        if got != want:
            problems.append(f'count(tag == "{tag}") {got} != journal {want}')
    ann_misses = 0
    if expected:
        ids = list(expected)
        picks = rng.choice(len(ids), size=min(cfg.search_probes, len(ids)), replace=False)
        for i in picks.tolist():
            pid = ids[i]
            vec = np.frombuffer(expected[pid][0], dtype="<f4")
            top = client.search(NAME, vec, k=1, exact=True, with_attributes=False).hits
            if not top or top[0].id != pid or abs(top[0].score) > 1e-3:
                problems.append(f"exact search for {pid}'s own vector did not return it first")
            ann = client.search(NAME, vec, k=10, with_attributes=False).hits
            ann_misses += pid not in {h.id for h in ann}
    return {"checked": checked, "lost": lost, "problems": problems, "landed": landed,
            "ann_misses": ann_misses}


def run_verify_command(data_dir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "sievedb.cli", "verify", "--data-dir", str(data_dir)],
        check=False, capture_output=True, text=True, timeout=600,
    )
    return {"exit_code": out.returncode, "output": (out.stdout + out.stderr).strip()}


# --- the campaign ----------------------------------------------------------------------------


def run_campaign(cfg: CampaignConfig, work_dir: Path) -> dict[str, Any]:
    """Run `cfg.kill_points` rounds in `work_dir`; returns the results document."""
    from sievedb import Client

    data_dir, logs = work_dir / "data", work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    order = [cfg.moments[i % len(cfg.moments)] for i in range(cfg.kill_points)]
    moments = [order[i] for i in rng.permutation(len(order)).tolist()]
    journals = [WriterJournal(w) for w in range(cfg.writers)]
    rounds: list[dict[str, Any]] = []
    started = time.perf_counter_ns()
    for r in range(cfg.kill_points + 1):
        server = start_server(data_dir, logs, f"{r:03d}", cfg)
        with Client(server.target, timeout=60.0) as client:
            if r == 0:
                client.create_collection(NAME, cfg.dim, "l2", full_scan_threshold=0,
                                         schema=SCHEMA)
            else:
                rec = rounds[-1]
                online = check_online(client, journals, cfg, rng)
                rec.update(server_start_s=round(server.started_s, 2), **online)
                rec["problems"] = rec["problems_offline"] + online["problems"] + rec["errors"]
                log.info("round %d %s: %d points checked, %d lost, %d problems", rec["round"],
                         rec["moment"], rec["checked"], len(rec["lost"]), len(rec["problems"]))
        if r == cfg.kill_points:
            server.proc.send_signal(signal.SIGTERM)
            clean_exit = server.proc.wait(timeout=120)
            break
        rec = run_round(server, journals, cfg, r, moments[r], rng, data_dir)
        offline = check_offline(data_dir)
        rec.update(
            open_s=offline["open_s"], pending_at_open=offline["pending_at_open"],
            problems_offline=offline["problems"],
        )
        rounds.append(rec)
    verify = run_verify_command(data_dir)
    elapsed = (time.perf_counter_ns() - started) / 1e9
    totals = {
        "kill_points": len(rounds),
        "acknowledged_point_writes": sum(j.acked_point_writes for j in journals),
        "acknowledged_points_checked": sum(r["checked"] for r in rounds),
        "lost": sum(len(r["lost"]) for r in rounds),
        "inconsistencies": sum(len(r["problems"]) for r in rounds)
        + (verify["exit_code"] != 0) + (clean_exit != 0),
        "ann_misses": sum(r["ann_misses"] for r in rounds),
        "moments": dict(Counter(r["moment"] for r in rounds)),
        "kills_with_pending_rows": sum(1 for r in rounds if r["pending_at_open"] > 0),
        "final_points": sum(len(j.points) for j in journals),
        "clean_shutdown_exit": clean_exit,
        "elapsed_s": round(elapsed, 1),
    }
    return {
        "benchmark": "crash_campaign",
        "command": command_line(),
        "seed": cfg.seed,
        "parameters": asdict(cfg),
        "environment": environment(),
        "totals": totals,
        "final_verify": verify,
        "rounds": rounds,
    }


def _markdown(doc: dict[str, Any]) -> str:
    t = doc["totals"]
    inflight = sum(len(r["inflight"]) for r in doc["rounds"])
    landed = sum(
        1 for r in doc["rounds"] for s in r["landed"] if not s.split(": ", 1)[1].startswith("0 of")
    )
    lines = [
        (f"Kill points: **{t['kill_points']}**; acknowledged point writes: "
        f"{t['acknowledged_point_writes']}; acknowledged points checked after restarts: "
        f"{t['acknowledged_points_checked']}; **lost: {t['lost']}**; **inconsistencies: "
        f"{t['inconsistencies']}**; ANN misses of acknowledged points: {t['ann_misses']}; "
        f"kills that left rows for the background indexer: {t['kills_with_pending_rows']}; "
        f"final `sievedb verify` exit code {doc['final_verify']['exit_code']}; "
        f"{t['elapsed_s']} s in all."),
        "",
        "Kill moments: " + ", ".join(f"{k} {v}" for k, v in sorted(t["moments"].items())) + ".",
        "",
        (f"Writes in flight at the kills: {inflight}, of which {landed} had unacknowledged "
         "chunks land (all settled atomically and in order)."),
        "",
        "Parameters: " + ", ".join(f"{k}={v}" for k, v in doc["parameters"].items()) + ".",
        "",
        "",
    ]
    rows = [
        {
            "round": r["round"],
            "moment": r["moment"] + (f" ({r['note']})" if r["note"] else ""),
            "kill at s": r["kill_after_s"],
            "acked ops": " ".join(f"{k}:{v}" for k, v in sorted(r["acked_ops"].items())),
            "in flight": "; ".join(r["inflight"]) or "-",
            "settled": "; ".join(r["landed"]) or "-",
            "pending at reopen": r["pending_at_open"],
            "checked": r["checked"],
            "lost": len(r["lost"]),
            "problems": len(r["problems"]),
        }
        for r in doc["rounds"]
    ]
    cols = ["round", "moment", "kill at s", "acked ops", "in flight", "settled",
            "pending at reopen", "checked", "lost", "problems"]
    details = [f"- round {r['round']}: {p}" for r in doc["rounds"] for p in r["lost"] + r["problems"]]
    return "\n".join(lines) + markdown_table(rows, cols) + "\n" + (
        "\n## Problems\n\n" + "\n".join(details[:200]) + "\n" if details else ""
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kill-points", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--writers", type=int, default=CampaignConfig.writers)
    ap.add_argument("--work-dir", type=Path, help="kept afterwards (default: a temp dir, removed)")
    ap.add_argument("--out", default="crash_campaign", help="results name under results/")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("sievedb", "sievedb_server"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cfg = CampaignConfig(kill_points=args.kill_points, seed=args.seed, writers=args.writers)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="sievedb-crash-campaign-"))
    doc = run_campaign(cfg, work)
    json_path, md_path = write_results(args.out, doc, _markdown(doc))
    t = doc["totals"]
    print(f"{t['kill_points']} kill points, lost {t['lost']}, inconsistencies "
          f"{t['inconsistencies']}; wrote {json_path} and {md_path}")
    if args.work_dir is None and not (t["lost"] or t["inconsistencies"]):
        shutil.rmtree(work, ignore_errors=True)
    return 1 if t["lost"] or t["inconsistencies"] else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
