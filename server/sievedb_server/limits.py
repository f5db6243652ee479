"""The one table of request limits: every bound a request can hit, with its default and why.

Two kinds of bound live here:

* `Limits` — operational limits, one frozen value per server (`create_server(limits=...)`,
  `Engine(limits=...)`, `sievedb serve --max-...` flags). They bound the memory and time one
  request can take. Exceeding one is RESOURCE_EXHAUSTED (`RequestTooLarge`, or
  `TooManyResults` for k and the scroll page), and the message names the limit and the value.
* Format limits — module constants, not configurable, because stored data or keys depend on
  them: LMDB keys are at most 511 bytes, so point ids, attribute keys and indexed keyword
  values are bounded in UTF-8 bytes; names become folder names. Breaking one is a malformed
  request: INVALID_ARGUMENT (except the indexed keyword length, a size: RESOURCE_EXHAUSTED).

`Limits.check(name, value)` is the single way to enforce an operational limit; it raises
the error with the message format every limit shares:

    "<what> is <value>; the limit is <limit> (<field name>)"

The README's "Operations: limits" section is the user-facing copy of this table.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from sievedb_server.errors import RequestTooLarge, TooManyResults

__all__ = [
    "DEFAULT_LIMITS",
    "INDEXED_KEYWORD_MAX_BYTES",
    "KEY_MAX_BYTES",
    "KEY_MAX_CHARS",
    "MODEL_ID_MAX_CHARS",
    "NAME_MAX_CHARS",
    "STR_ID_MAX_BYTES",
    "Limits",
]

MiB: Final = 1024 * 1024

# --- format limits (fixed) ------------------------------------------------------------------

NAME_MAX_CHARS: Final = 64
"""Collection and alias names: [A-Za-z0-9_-]{1,64} (they become folder names and keys)."""
MODEL_ID_MAX_CHARS: Final = 128
"""Model ids: [A-Za-z0-9][A-Za-z0-9._:@+-]{0,127} (an LMDB key `m:<id>`; never a path)."""
KEY_MAX_CHARS: Final = 128
"""Attribute keys / filter field names: 1-128 characters..."""
KEY_MAX_BYTES: Final = 256
"""...and at most 256 UTF-8 bytes (a posting key is `field \\0 value` in one LMDB key)."""
STR_ID_MAX_BYTES: Final = 510
"""String point ids: 1-510 UTF-8 bytes (the LMDB key is a tag byte + the id, ≤ 511 bytes)."""
INDEXED_KEYWORD_MAX_BYTES: Final = 240
"""A string stored in an *indexed* keyword / keyword_list field: its posting key is
`field (≤ 256 B) + 7 B framing + value`, which must fit LMDB's 511-byte keys."""


@dataclass(frozen=True)
class Limits:
    """Operational limits of one server. Defaults are documented in the README table.

    Each field's docstring says what it bounds and why the default is what it is.
    """

    # --- transport -------------------------------------------------------------------------
    max_message_bytes: int = 64 * MiB
    """Largest request or response message (gRPC max receive/send length)."""
    max_concurrent_rpcs: int = 128
    """Calls in progress or queued for a worker thread; beyond it gRPC itself answers
    RESOURCE_EXHAUSTED ("Concurrent RPC limit exceeded"), so queued work stays bounded."""
    stream_idle_timeout_s: float = 60.0
    """Longest wait for the next message of a client stream (BulkLoad) before the server
    gives up with DEADLINE_EXCEEDED (reason STREAM_IDLE), freeing its worker thread."""
    keepalive_time_s: float = 60.0
    """Server pings an idle connection this often, so dead peers are noticed and their
    calls cancelled (and their threads freed)."""
    keepalive_timeout_s: float = 20.0
    """A ping not acknowledged within this closes the connection."""
    max_connection_idle_s: float = 0.0
    """Close connections idle (no calls) this long; 0 = never."""
    max_connection_age_s: float = 0.0
    """Ask clients to reconnect after this long (load rebalancing); 0 = never."""

    # --- requests --------------------------------------------------------------------------
    max_batch_points: int = 100_000
    """Points per Upsert request or BulkLoad chunk, and rows per import batch."""
    max_batch_queries: int = 10_000
    """Queries per SearchBatch request."""
    max_k: int = 10_000
    """Nearest neighbours per query (the result is materialised in memory)."""
    max_ef: int = 4_096
    """Search beam per query (the HNSW candidate lists grow with it)."""
    max_scroll_limit: int = 10_000
    """Points per Scroll page."""
    max_dim: int = 65_536
    """Vector dimension of a collection."""
    max_collections: int = 1_000
    """Collections per server (each holds an LMDB environment, an index and a thread)."""

    # --- filters ---------------------------------------------------------------------------
    max_filter_depth: int = 32
    """Nesting of filters (a flat filter has depth 1; each parenthesis/not/group adds one)."""
    max_filter_nodes: int = 10_000
    """Conditions + nested filters + listed values in one filter."""
    max_filter_expr_chars: int = 65_536
    """Length of a text filter expression."""
    max_match_values: int = 4_096
    """Values in one `in [...]` / `not in [...]` (match any / except) or `id in [...]` list."""

    # --- attributes ------------------------------------------------------------------------
    max_attribute_bytes: int = 65_536
    """Encoded (msgpack) attributes of one point."""
    max_attribute_keys: int = 256
    """Keys in one point's attributes."""
    max_string_bytes: int = 16_384
    """UTF-8 bytes of one string attribute value."""
    max_list_values: int = 1_024
    """Values in one list attribute."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"limit {f.name} must be a non-negative number, got {value!r}")
            if f.name.startswith("max_") and not f.name.endswith("_s") and value < 1:
                raise ValueError(f"limit {f.name} must be at least 1, got {value!r}")

    def check(self, name: str, value: int, what: str | None = None) -> int:
        """Return `value`, or raise RESOURCE_EXHAUSTED naming `name` if it exceeds the limit."""
        limit = getattr(self, name)
        if value > limit:
            error = TooManyResults if name in _RESULT_LIMITS else RequestTooLarge
            raise error(f"{what or _WHAT[name]} is {value}; the limit is {limit} ({name})")
        return value

    def as_rows(self) -> list[tuple[str, object]]:
        """(field, value) pairs, for logs and docs."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


_RESULT_LIMITS = frozenset({"max_k", "max_scroll_limit"})
_WHAT = {
    "max_message_bytes": "the message size",
    "max_batch_points": "the number of points in the request",
    "max_batch_queries": "the number of queries in the request",
    "max_k": "k",
    "max_ef": "ef",
    "max_scroll_limit": "the scroll limit",
    "max_dim": "dim",
    "max_collections": "the number of collections",
    "max_filter_depth": "the filter nesting depth",
    "max_filter_nodes": "the number of filter nodes",
    "max_filter_expr_chars": "the length of the filter expression",
    "max_match_values": "the number of values in one list",
    "max_attribute_bytes": "the encoded size of the attributes",
    "max_attribute_keys": "the number of attribute keys",
    "max_string_bytes": "the UTF-8 size of a string value",
    "max_list_values": "the number of values in a list attribute",
}

DEFAULT_LIMITS: Final = Limits()
