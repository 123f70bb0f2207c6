"""Context stores: live contexts for reuse, and saved contexts in a backend by reference."""

from .backends import Backend, DirectoryBackend, Entry, MemoryBackend
from .cache import ContextStore, default_store, reusable_prefix, same_content
from .connect import open_backend
from .records import ContextRef
from .sql import SQLiteBackend

__all__ = [
    "Backend",
    "ContextRef",
    "ContextStore",
    "DirectoryBackend",
    "Entry",
    "MemoryBackend",
    "SQLiteBackend",
    "default_store",
    "open_backend",
    "reusable_prefix",
    "same_content",
]


def __getattr__(name: str) -> object:
    if name in ("PostgresBackend", "RedisBackend"):
        from . import network

        return getattr(network, name)
    raise AttributeError(f"module 'avp_core.store' has no attribute {name!r}")
