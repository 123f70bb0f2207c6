"""``open_backend(uri)``: a backend from a URI, for configuration files and the CLI."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequestError
from .backends import Backend, DirectoryBackend, MemoryBackend
from .sql import SQLiteBackend


def open_backend(uri: str, **options: Any) -> Backend:
    """A backend for ``uri``: ``memory:``, ``dir:PATH`` (or a bare path), ``sqlite:PATH``,
    ``postgresql://...`` (or ``postgres://``), ``redis://...`` (or ``rediss://``).
    ``options`` (``max_bytes``, ``ttl_s``...) go to the backend's constructor."""
    if not isinstance(uri, str) or not uri:
        raise InvalidRequestError(f"a store URI is a non-empty string, got {uri!r}")
    scheme, _, rest = uri.partition(":")
    if uri == "memory:":
        return MemoryBackend(**options)
    if scheme in ("postgresql", "postgres"):
        from .network import PostgresBackend

        return PostgresBackend(uri, **options)
    if scheme in ("redis", "rediss", "unix"):
        from .network import RedisBackend

        return RedisBackend(uri, **options)
    if scheme == "sqlite":
        return SQLiteBackend(rest.removeprefix("//"), **options)
    if scheme == "dir":
        return DirectoryBackend(rest.removeprefix("//"), **options)
    if "://" in uri:
        raise InvalidRequestError(
            f"unknown store URI scheme {scheme!r} in {uri!r}: use memory:, dir:PATH, "
            "sqlite:PATH, postgresql://... or redis://..."
        )
    return DirectoryBackend(uri, **options)
