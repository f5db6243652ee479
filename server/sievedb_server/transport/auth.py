"""API keys with roles, checked by a server interceptor.

A client sends `authorization: Bearer <key>` metadata. Each key has one role; roles are
ordered, a higher one includes the lower ones:

    read  < write < admin

`METHOD_ROLES` is THE table saying which role every RPC of `sievedb.v1.SieveDB` needs. A test
checks that it names exactly the methods of the service descriptor, and the interceptor refuses
(PERMISSION_DENIED) any sievedb method missing from it, so a new RPC cannot skip the check.
Health and reflection are other services and stay open (probes and `grpcurl describe`).

Keys are never stored or logged in clear: the `KeyStore` keeps their SHA-256 digests and
compares with `hmac.compare_digest`. The interceptor raises domain errors
(`Unauthenticated`, `PermissionDenied`); it sits inside the `RequestInterceptor`, which maps
them to a status, adds the request id and writes the access log line, like any other error.

Key sources (`load_keys`): a file of `role:key` lines (`#` comments and blank lines ignored;
`role:sha256:<hex>` gives a digest instead of the key), or JSON
(`{"keys": [{"role": "read", "key": "..."} | {"role": "admin", "sha256": "<hex>"}]}` or the
bare list), and/or the `SIEVEDB_API_KEYS` environment variable (`role:key` entries separated by
commas or newlines).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import grpc

from sievedb_server.errors import PermissionDenied, Unauthenticated

__all__ = [
    "API_KEYS_ENV",
    "AUTHORIZATION_KEY",
    "METHOD_ROLES",
    "MIN_KEY_LENGTH",
    "AuthInterceptor",
    "KeyFileError",
    "KeyStore",
    "Role",
    "load_keys",
    "required_role",
]

AUTHORIZATION_KEY: Final = "authorization"
API_KEYS_ENV: Final = "SIEVEDB_API_KEYS"
MIN_KEY_LENGTH: Final = 16
SERVICE_PREFIX: Final = "/sievedb.v1.SieveDB/"

# Printable ASCII without spaces or the entry separators: fits in gRPC metadata as is.
_KEY_RE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_HEX_DIGEST_RE = re.compile(r"[0-9a-fA-F]{64}")


class Role(enum.IntEnum):
    """What a key may do; a higher role includes every lower one."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(r.name.lower() for r in cls)
            raise KeyFileError(f"unknown role {text.strip()!r} (expected one of {names})") from None

    def __str__(self) -> str:
        return self.name.lower()


_R, _W, _A = Role.READ, Role.WRITE, Role.ADMIN

METHOD_ROLES: Final[Mapping[str, Role]] = MappingProxyType(
    {
        # collections
        "CreateCollection": _A,
        "DescribeCollection": _R,
        "ListCollections": _R,
        "DropCollection": _A,
        "UpdateSchema": _A,
        # points
        "Upsert": _W,
        "GetPoints": _R,
        "DeletePoints": _W,
        "Count": _R,
        "Scroll": _R,
        "Search": _R,
        "SearchBatch": _R,
        # loading
        "BulkLoad": _W,
        "LoadStatus": _R,
        "StartImport": _W,
        "GetOperation": _R,
        # models and aliases
        "SetProbeSet": _A,
        "RegisterModel": _A,
        "ListModels": _R,
        "CheckModel": _R,
        "PromoteModel": _A,
        "SetAlias": _A,
        "RollbackAlias": _A,
        "DeleteAlias": _A,
        "ListAliases": _R,
        # snapshots (a snapshot holds every point: reading one is as sensitive as writing)
        "CreateSnapshot": _A,
        "ListSnapshots": _A,
        "DeleteSnapshot": _A,
        "DownloadSnapshot": _A,
        "RestoreSnapshot": _A,
    }
)
"""RPC name (of `sievedb.v1.SieveDB`) → the least role allowed to call it."""


def required_role(method: str) -> Role | None:
    """The role `method` (a full gRPC method path) needs.

    None for methods of other services (health, reflection: open) AND for sievedb methods
    missing from `METHOD_ROLES` — which `AuthInterceptor` refuses to everyone.
    """
    if not method.startswith(SERVICE_PREFIX):
        return None
    return METHOD_ROLES.get(method[len(SERVICE_PREFIX) :])


class KeyFileError(ValueError):
    """An API key source that cannot be used (the message never contains a key)."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyStore:
    """SHA-256 digests of the accepted API keys and their roles (no key is kept in clear)."""

    def __init__(self, entries: Iterable[tuple[Role, bytes]] = ()) -> None:
        self._entries: tuple[tuple[bytes, Role], ...] = tuple(
            (digest, role) for role, digest in entries
        )

    @classmethod
    def from_keys(cls, keys: Mapping[str, Role | str]) -> KeyStore:
        """From `{key: role}` (for embedding and tests)."""
        return cls((_as_role(role), _digest(_checked_key(key))) for key, role in keys.items())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"KeyStore({self.summary()})"

    def __or__(self, other: KeyStore) -> KeyStore:
        return KeyStore([(role, digest) for digest, role in self._entries + other._entries])

    def summary(self) -> str:
        """`"3 keys (admin 1, read 1, write 1)"` — counts only, safe to log."""
        counts: dict[str, int] = {}
        for _, role in self._entries:
            counts[str(role)] = counts.get(str(role), 0) + 1
        detail = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        return f"{len(self._entries)} key{'s' if len(self._entries) != 1 else ''} ({detail})"

    def role_of(self, key: str) -> Role | None:
        """The role of `key`, or None. Compares against every entry (no early exit)."""
        presented = _digest(key)
        found: Role | None = None
        for digest, role in self._entries:
            if hmac.compare_digest(presented, digest) and (found is None or role > found):
                found = role
        return found


def _as_role(role: Role | str) -> Role:
    return role if isinstance(role, Role) else Role.parse(role)


def _checked_key(key: str) -> str:
    if len(key) < MIN_KEY_LENGTH:
        raise KeyFileError(f"API keys must have at least {MIN_KEY_LENGTH} characters")
    if not _KEY_RE.fullmatch(key):
        raise KeyFileError("API keys may contain printable ASCII only, without spaces or commas")
    return key


def _entry(role_text: str, secret: str, *, hashed: bool, where: str) -> tuple[Role, bytes]:
    try:
        role = Role.parse(role_text)
        if hashed:
            if not _HEX_DIGEST_RE.fullmatch(secret):
                raise KeyFileError("a sha256 entry needs 64 hex digits")
            return role, bytes.fromhex(secret)
        return role, _digest(_checked_key(secret))
    except KeyFileError as exc:
        raise KeyFileError(f"{where}: {exc}") from None


def _parse_lines(lines: Iterable[str], source: str) -> Iterator[tuple[Role, bytes]]:
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        role_text, sep, secret = line.partition(":")
        if not sep or not secret:
            raise KeyFileError(f"{source} entry {number}: expected role:key")
        hashed = secret.startswith("sha256:")
        yield _entry(
            role_text,
            secret.removeprefix("sha256:") if hashed else secret,
            hashed=hashed,
            where=f"{source} entry {number}",
        )


def _parse_json(doc: Any, source: str) -> Iterator[tuple[Role, bytes]]:
    items = doc.get("keys") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise KeyFileError(f'{source}: expected a list of keys or {{"keys": [...]}}')
    for number, item in enumerate(items, 1):
        where = f"{source} key {number}"
        if not isinstance(item, dict) or not isinstance(item.get("role"), str):
            raise KeyFileError(f"{where}: expected an object with a role")
        if isinstance(item.get("sha256"), str):
            yield _entry(item["role"], item["sha256"], hashed=True, where=where)
        elif isinstance(item.get("key"), str):
            yield _entry(item["role"], item["key"], hashed=False, where=where)
        else:
            raise KeyFileError(f'{where}: expected a "key" or "sha256" string')


def _read_key_file(path: Path) -> KeyStore:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyFileError(f"cannot read API key file {path}: {exc.strerror}") from None
    source = str(path)
    if text.lstrip().startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            # exc's message quotes no content, only the position.
            raise KeyFileError(f"{source}: invalid JSON at line {exc.lineno}") from None
        return KeyStore(_parse_json(doc, source))
    return KeyStore(_parse_lines(text.splitlines(), source))


def load_keys(
    path: Path | str | None = None, *, environ: Mapping[str, str] | None = None
) -> KeyStore | None:
    """The keys from `path` and/or `$SIEVEDB_API_KEYS`; None when neither is configured.

    An empty configured source is an error (auth switched on with nobody allowed in is a
    mistake, not a policy).
    """
    env = os.environ if environ is None else environ
    stores: list[KeyStore] = []
    if path is not None and str(path):
        stores.append(_read_key_file(Path(path)))
    inline = env.get(API_KEYS_ENV, "")
    if inline.strip():
        stores.append(KeyStore(_parse_lines(re.split(r"[,\n]", inline), f"${API_KEYS_ENV}")))
    if not stores:
        return None
    merged = KeyStore()
    for store in stores:
        merged = merged | store
    if not len(merged):
        raise KeyFileError("API keys are configured but none was found")
    return merged


def _bearer_key(metadata: Any) -> str:
    """The key of the `authorization: Bearer <key>` metadata (raises Unauthenticated)."""
    for key, value in metadata or ():
        if key != AUTHORIZATION_KEY:
            continue
        scheme, _, token = str(value).strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("malformed authorization metadata: expected 'Bearer <key>'")
        return token.strip()
    raise Unauthenticated(
        "this server requires an API key: send 'authorization: Bearer <key>' metadata"
    )


class AuthInterceptor(grpc.ServerInterceptor):
    """Checks the caller's key against the role `METHOD_ROLES` requires.

    Install it AFTER the `RequestInterceptor` (inner), so its errors get mapped and logged
    with a request id like every other error.
    """

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def authorize(self, method: str, metadata: Any) -> Role | None:
        """Raise Unauthenticated / PermissionDenied unless the caller may call `method`."""
        if not method.startswith(SERVICE_PREFIX):
            return None
        role = self.keys.role_of(_bearer_key(metadata))
        if role is None:
            raise Unauthenticated("invalid API key")
        name = method[len(SERVICE_PREFIX) :]
        needed = METHOD_ROLES.get(name)
        if needed is None:
            raise PermissionDenied(f"{name} has no role assigned; nobody may call it")
        if role < needed:
            raise PermissionDenied(f"{name} needs the {needed} role; this key has {role}")
        return role

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method), **kwargs
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method), **kwargs
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method), **kwargs
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(handler.stream_stream, method), **kwargs
            )
        return handler

    def _unary(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            self.authorize(method, context.invocation_metadata())
            return behavior(request, context)

        return wrapped

    def _stream(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            self.authorize(method, context.invocation_metadata())
            yield from behavior(request, context)

        return wrapped
