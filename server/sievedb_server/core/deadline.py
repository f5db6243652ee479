"""Deadlines and cancellation for long server work, without core code knowing about gRPC.

The transport binds the current call's budget with `bind(time_remaining, is_active)` while a
handler runs (a context variable, so it follows the handler's thread). Long core work calls
`checkpoint(step)` between sub-steps — between queries of a batch, before committing a write
transaction, between chunks of a stream — and stops there with `DeadlineExceeded` or
`Cancelled` once the caller's deadline has passed or the caller went away. Outside a call
(in-process use, tests, background threads) `checkpoint` does nothing.

Checkpoints sit only where stopping is clean: a write batch is one LMDB transaction, and a
checkpoint inside it aborts the transaction, so a stopped write leaves nothing behind.
A checkpoint passed just before the commit can still be followed by the deadline expiring
before the reply reaches the client: the client then sees DEADLINE_EXCEEDED for a committed
write, as with any RPC system (upserts are idempotent, so retrying is safe).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sievedb_server.errors import Cancelled, DeadlineExceeded

__all__ = ["CallBudget", "bind", "checkpoint", "current"]


@dataclass(frozen=True)
class CallBudget:
    """How to ask the transport about the current call (both callables are cheap)."""

    time_remaining: Callable[[], float | None]  # seconds left, None = no deadline
    is_active: Callable[[], bool]  # False once cancelled or expired


_current: contextvars.ContextVar[CallBudget | None] = contextvars.ContextVar(
    "sievedb_call_budget", default=None
)


def current() -> CallBudget | None:
    return _current.get()


@contextmanager
def bind(budget: CallBudget) -> Iterator[None]:
    """Make `budget` the one `checkpoint` consults, for the duration of the block."""
    token = _current.set(budget)
    try:
        yield
    finally:
        _current.reset(token)


def checkpoint(step: str = "") -> None:
    """Raise `DeadlineExceeded` / `Cancelled` if the current call should stop now."""
    budget = _current.get()
    if budget is None:
        return
    remaining = budget.time_remaining()
    where = f" ({step})" if step else ""
    if remaining is not None and remaining <= 0:
        raise DeadlineExceeded(f"the deadline passed before the server finished{where}")
    if not budget.is_active():
        if remaining is not None and remaining <= 0.001:
            raise DeadlineExceeded(f"the deadline passed before the server finished{where}")
        raise Cancelled(f"the call was cancelled{where}")
