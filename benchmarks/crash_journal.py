"""The crash campaign's client-side journal: what was acknowledged, what was in flight.

Each writer thread owns its ids (`w<writer>-<n>`), so per-id history is sequential and one
`WriterJournal` per writer holds, for every id the server acknowledged as present, the exact
state it acknowledged: the float32 vector bytes and the attributes. A write is an `Op` made of
atomic chunks (one for an upsert or delete RPC, one per streamed chunk for a bulk load, which
the server commits in order); a chunk enters the journal when its acknowledgement arrives.

After a `kill -9` each writer has at most one op whose remaining chunks were sent but not
acknowledged: each may or may not have landed. `resolve` decides that from what the
restarted server holds, chunk by chunk, and flags anything no correct store could show: a
chunk half applied, or a later chunk of a stream landed without an earlier one. `compare`
then demands the server hold exactly the journal: every acknowledged (or landed) state,
nothing deleted, nothing never written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Op", "State", "WriterJournal", "compare", "state_of"]

State = tuple[bytes, tuple[tuple[str, Any], ...]]
"""(vector as float32 little-endian bytes, attributes as sorted items): hashable, comparable."""


def state_of(vector: Any, attributes: Mapping[str, Any] | None) -> State:
    import numpy as np

    return (
        np.asarray(vector, dtype="<f4").tobytes(),
        tuple(sorted((attributes or {}).items())),
    )


@dataclass
class Op:
    """One write RPC: `chunks[i]` maps id -> new state (None = deleted); applied atomically."""

    kind: str
    chunks: list[dict[str, State | None]]
    acked: int = 0  # leading chunks acknowledged by the server
    load_id: str = ""
    chunk_rows: list[int] = field(default_factory=list)  # bulk: source rows after each chunk

    @property
    def points(self) -> int:
        return sum(len(c) for c in self.chunks)


@dataclass
class WriterJournal:
    writer: int
    points: dict[str, State] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)  # every id ever sent (for error messages)
    next_id: int = 0
    version: int = 0
    inflight: Op | None = None
    acked_point_writes: int = 0

    def new_ids(self, n: int) -> list[str]:
        ids = [f"w{self.writer}-{self.next_id + i}" for i in range(n)]
        self.next_id += n
        return ids

    def begin(self, op: Op) -> None:
        for chunk in op.chunks:
            self.sent.update(chunk)
        self.inflight = op

    def ack_chunk(self, op: Op) -> None:
        """The server acknowledged `op`'s next chunk: it is now the truth for its ids."""
        self._apply(op.chunks[op.acked])
        self.acked_point_writes += len(op.chunks[op.acked])
        op.acked += 1
        if op.acked == len(op.chunks):
            self.inflight = None

    def _apply(self, chunk: Mapping[str, State | None]) -> None:
        for pid, state in chunk.items():
            if state is None:
                self.points.pop(pid, None)
            else:
                self.points[pid] = state

    def resolve(self, observed: Mapping[str, State]) -> tuple[int, list[str]]:
        """Settle the in-flight op against the server's state: (chunks landed, problems)."""
        op, self.inflight = self.inflight, None
        if op is None:
            return 0, []
        problems: list[str] = []
        landed = 0
        gap = False
        for i in range(op.acked, len(op.chunks)):
            chunk = op.chunks[i]
            new = all(observed.get(pid) == st for pid, st in chunk.items())
            old = all(observed.get(pid) == self.points.get(pid) for pid in chunk)
            if new and not old:
                if gap:
                    problems.append(
                        f"writer {self.writer} {op.kind}: chunk {i} landed after an earlier "
                        "unacknowledged chunk did not (chunks must commit in order)"
                    )
                self._apply(chunk)
                landed += 1
            elif old:  # not landed (or indistinguishable from not landed)
                gap = True
            else:
                problems.append(
                    f"writer {self.writer} {op.kind}: unacknowledged chunk {i} of {len(chunk)} "
                    "points is partly applied (a chunk must be atomic)"
                )
                self._apply({pid: observed.get(pid) for pid in chunk})
        return landed, problems


def compare(
    journals: Iterable[WriterJournal], observed: Mapping[str, State]
) -> tuple[int, list[str], list[str]]:
    """(points checked, lost acknowledged writes, other inconsistencies) after `resolve`."""
    lost: list[str] = []
    wrong: list[str] = []
    expected: dict[str, State] = {}
    sent: set[str] = set()
    for journal in journals:
        expected.update(journal.points)
        sent |= journal.sent
    for pid, state in expected.items():
        got = observed.get(pid)
        if got is None:
            lost.append(f"{pid}: acknowledged but missing")
        elif got != state:
            what = "vector" if got[0] != state[0] else "attributes"
            lost.append(f"{pid}: {what} differ from the acknowledged state")
    for pid in observed.keys() - expected.keys():
        if pid in sent:
            wrong.append(f"{pid}: deleted (acknowledged) or never landed, yet present")
        else:
            wrong.append(f"{pid}: never written, yet present")
    return len(expected), lost, wrong
