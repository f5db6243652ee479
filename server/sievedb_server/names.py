"""The rules for user-chosen names: collections, aliases, model ids, attribute keys.

Names end up as folder names, LMDB keys, log fields and metric labels, so each kind has one
rule, checked here and nowhere else:

| name                  | rule                                                         |
|-----------------------|--------------------------------------------------------------|
| collection, alias     | ``[A-Za-z0-9_-]{1,64}`` (a folder name: never a path)        |
| model id              | ``[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}`` (no ``/``, no ``..`` start) |
| attribute key, field  | 1-128 characters, ≤ 256 UTF-8 bytes, no control or surrogate characters, no ``/`` or ``\\`` |

Path-like names (``../x``, ``a/b``, ``C:\\x``) and control characters (C0, DEL, C1) are refused
everywhere: they make logs ambiguous and would turn into paths if a name ever became one.
"""

from __future__ import annotations

import re
import unicodedata

from sievedb_server.errors import InvalidName
from sievedb_server.limits import KEY_MAX_BYTES, KEY_MAX_CHARS, MODEL_ID_MAX_CHARS, NAME_MAX_CHARS

__all__ = ["key_problem", "validate_collection_name", "validate_model_id"]

_NAME_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{NAME_MAX_CHARS}}}")
_MODEL_ID_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:@+-]{{0,{MODEL_ID_MAX_CHARS - 1}}}")


def validate_collection_name(name: object, what: str = "collection name") -> str:
    """Collection (and alias) names become LMDB keys and folder names, so they are restricted."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidName(
            f"{what} {name!r} is invalid: use 1-{NAME_MAX_CHARS} characters from [A-Za-z0-9_-]"
        )
    return name


def validate_model_id(model_id: object) -> str:
    if not isinstance(model_id, str) or not _MODEL_ID_RE.fullmatch(model_id):
        raise InvalidName(
            f"model id {model_id!r} is invalid: use 1-{MODEL_ID_MAX_CHARS} characters from "
            "[A-Za-z0-9._:@+-], starting with a letter or digit"
        )
    return model_id


def _bad_char(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs")


def key_problem(key: object) -> str | None:
    """Why `key` is not a valid attribute key / filter field name, or None if it is."""
    if not isinstance(key, str) or not 1 <= len(key) <= KEY_MAX_CHARS:
        return f"must be a string of 1-{KEY_MAX_CHARS} characters"
    if any(_bad_char(ch) for ch in key):
        return "contains a control character"
    if "/" in key or "\\" in key:
        return "contains a path separator ('/' or '\\')"
    if len(key.encode("utf-8", "surrogatepass")) > KEY_MAX_BYTES:
        return f"is longer than {KEY_MAX_BYTES} UTF-8 bytes"
    return None
