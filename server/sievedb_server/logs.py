"""Log output of `sievedb serve`: human text or one JSON object per line.

`configure_logging(level, fmt)` installs one handler on the root logger. Both formats carry
the same facts; the server's loggers put them in `extra=` fields (request id, method, status,
duration, peer, collection: see `transport/interceptors.py`), which

* `text` appends to the message the logger already wrote (`... request_id=... peer=...`),
* `json` emits as top-level keys next to `ts`, `level`, `logger` and `message`, plus `exc_info`
  (the formatted traceback) when there is one.

Written here rather than taken from a library because it is ~40 lines of `json.dumps` and the
field set is ours; a dependency would not remove any of them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Final

__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "configure_logging"]

LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, the `extra=` fields, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_") and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc_info"] = record.exc_text
        if record.stack_info:
            doc["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure_logging(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every log record at `level` or above to `stream` (stderr) in `fmt`."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
