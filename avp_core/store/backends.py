"""Where a :class:`~avp_core.ContextStore` keeps record bytes: the interface, memory, a directory.

Every backend holds records by content key, with each record's parent key and depth (its
distance from a root record), bounded by ``max_bytes`` (least recently used evicted first)
and ``ttl_s`` (seconds since last use). A record's ancestors are always at least as recently
used as the record (the store touches a chain leaf first, and equal times evict the deeper
record first), so eviction removes leaves before the records they build on.
SQLite is in :mod:`avp_core.store.sql`, PostgreSQL and Redis in :mod:`avp_core.store.network`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequestError, StoreError

_DEPTH_STEP = 1e-6  # deeper records look slightly older: leaves go first among equals


@dataclass(frozen=True)
class Entry:
    """What a backend knows of a record without reading its bytes."""

    key: str
    parent: str | None
    size: int
    accessed: float


class Backend(ABC):
    """Record bytes by content key, bounded by bytes and age. Subclasses are thread-safe."""

    uri: str = ""

    def __init__(
        self,
        max_bytes: int | None = None,
        ttl_s: float | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise InvalidRequestError(f"max_bytes must be positive or None, got {max_bytes}")
        if ttl_s is not None and ttl_s <= 0:
            raise InvalidRequestError(f"ttl_s must be positive or None, got {ttl_s}")
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.RLock()

    @abstractmethod
    def put(self, key: str, data: bytes, parent: str | None = None, depth: int = 0) -> None:
        """Store ``data`` under ``key`` (a no-op if ``key`` is held: keys name content), then
        evict to fit ``max_bytes``. Raises :class:`~avp_core.errors.StoreError` if the bytes
        were not stored."""

    @abstractmethod
    def _read(self, key: str) -> tuple[bytes, str | None] | None:
        """The bytes and parent key of a live (unexpired) record, without touching it."""

    @abstractmethod
    def touch(self, keys: Sequence[str]) -> int:
        """Mark records used now (give them leaf first); returns how many are held."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> int:
        """Remove records; returns how many were removed."""

    @abstractmethod
    def entries(self) -> list[Entry]:
        """Every live record's key, parent, size and last use."""

    @abstractmethod
    def put_prefixes(self, entries: Mapping[str, str]) -> None:
        """Record prefix-index entries (prefix hash -> record key); newer entries win."""

    @abstractmethod
    def get_prefixes(self, hashes: Sequence[str]) -> dict[str, str]:
        """The record keys of those ``hashes`` that have an entry whose record is held."""

    def nbytes(self) -> int:
        """Bytes of the records held."""
        return sum(entry.size for entry in self.entries())

    def get_chain(self, key: str) -> list[tuple[str, bytes]] | None:
        """The record ``key`` and its ancestors, leaf first, all marked used; None if any is
        missing (evicted, expired or never stored)."""
        chain: list[tuple[str, bytes]] = []
        current: str | None = key
        while current is not None:
            found = self._read(current)
            if found is None or len(chain) > 1_000_000:
                return None
            chain.append((current, found[0]))
            current = found[1]
        self.touch([k for k, _ in chain])
        return chain

    def expire(self) -> int:
        """Remove records unused for ``ttl_s``; returns how many."""
        if self.ttl_s is None:
            return 0
        deadline = self._deadline()
        return self.delete([e.key for e in self.entries() if e.accessed < deadline])

    def now(self) -> float:
        """This backend's clock, on which last uses (``Entry.accessed``) are measured."""
        return self._clock()

    def _deadline(self) -> float:
        """Records last used before this have expired (-inf without a ``ttl_s``)."""
        return self._clock() - self.ttl_s if self.ttl_s is not None else float("-inf")

    def _expired(self, accessed: float) -> bool:
        return accessed < self._deadline()

    def evict(self) -> int:
        """Remove least recently used records until the rest fit ``max_bytes``."""
        if self.max_bytes is None:
            return 0
        entries = self.entries()
        total = sum(e.size for e in entries)
        victims = []
        for entry in sorted(entries, key=lambda e: e.accessed):
            if total <= self.max_bytes:
                break
            victims.append(entry.key)
            total -= entry.size
        return self.delete(victims) if victims else 0

    def close(self) -> None:  # noqa: B027 (most backends hold nothing to release)
        """Release connections or files (the backend cannot be used afterwards)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stamp(self, depth: int) -> float:
        return self._clock() - depth * _DEPTH_STEP


class MemoryBackend(Backend):
    """Records in this process's memory (gone when it exits); ``max_bytes`` 512 MiB."""

    uri = "memory:"

    def __init__(
        self,
        max_bytes: int | None = 512 << 20,
        ttl_s: float | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_bytes, ttl_s, clock=clock)
        self._records: OrderedDict[str, tuple[bytes, str | None, int, float]] = OrderedDict()
        self._bytes = 0
        self._prefixes: dict[str, str] = {}

    def put(self, key: str, data: bytes, parent: str | None = None, depth: int = 0) -> None:
        with self._lock:
            if key not in self._records:
                self._records[key] = (bytes(data), parent, depth, self._stamp(depth))
                self._bytes += len(data)
            self.touch([key])
            self.expire()
            if self.max_bytes is not None and self._bytes > self.max_bytes:
                self.evict()

    def _read(self, key: str) -> tuple[bytes, str | None] | None:
        with self._lock:
            record = self._records.get(key)
            if record is None or self._expired(record[3]):
                return None
            return record[0], record[1]

    def touch(self, keys: Sequence[str]) -> int:
        held = 0
        with self._lock:
            for key in keys:
                record = self._records.get(key)
                if record is not None and not self._expired(record[3]):
                    self._records[key] = (*record[:3], self._stamp(record[2]))
                    self._records.move_to_end(key)
                    held += 1
        return held

    def delete(self, keys: Iterable[str]) -> int:
        removed = 0
        with self._lock:
            for key in keys:
                record = self._records.pop(key, None)
                if record is not None:
                    self._bytes -= len(record[0])
                    removed += 1
            if removed and self._prefixes:
                self._prefixes = {h: k for h, k in self._prefixes.items() if k in self._records}
        return removed

    def entries(self) -> list[Entry]:
        with self._lock:
            return [
                Entry(key, parent, len(data), accessed)
                for key, (data, parent, _, accessed) in self._records.items()
                if not self._expired(accessed)
            ]

    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def put_prefixes(self, entries: Mapping[str, str]) -> None:
        with self._lock:
            self._prefixes.update(entries)

    def get_prefixes(self, hashes: Sequence[str]) -> dict[str, str]:
        with self._lock:
            found = {h: self._prefixes[h] for h in hashes if h in self._prefixes}
            return {h: key for h, key in found.items() if key in self._records}


class DirectoryBackend(Backend):
    """Records as files under ``path`` (created if needed), one per record; survives
    restarts and can be shared by processes on one machine. Last use is the file's mtime."""

    _HEADER = 8 + 64 + 8  # magic, parent key (or dashes), depth

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int | None = None,
        ttl_s: float | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_bytes, ttl_s, clock=clock)
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot use {self.path} as a context store: {exc}") from exc
        self.uri = f"dir:{self.path.resolve()}"
        self._estimate: int | None = None  # bytes held, re-measured when over the bound

    def _file(self, key: str) -> Path:
        return self.path / key[:2] / key

    def put(self, key: str, data: bytes, parent: str | None = None, depth: int = 0) -> None:
        target = self._file(key)
        with self._lock:
            if not target.exists():
                header = b"AVPREC01" + (parent or "-" * 64).encode() + depth.to_bytes(8, "little")
                _write_atomically(target, header, data)
                if self._estimate is not None:
                    self._estimate += len(data)
            self.touch([key])
            self.expire()
            if self.max_bytes is not None:
                if self._estimate is None:
                    self._estimate = self.nbytes()
                if self._estimate > self.max_bytes:
                    self.evict()
                    self._estimate = self.nbytes()

    def _read(self, key: str) -> tuple[bytes, str | None] | None:
        try:
            path = self._file(key)
            if self._expired(path.stat().st_mtime):
                return None
            raw = path.read_bytes()
        except (OSError, ValueError):
            return None
        if len(raw) < self._HEADER or raw[:8] != b"AVPREC01":
            return None
        parent = raw[8:72].decode("ascii", "replace")
        return raw[self._HEADER :], None if parent == "-" * 64 else parent

    def touch(self, keys: Sequence[str]) -> int:
        held = 0
        for key in keys:
            path = self._file(key)
            try:
                depth = self._depth(path)
                if depth is None or self._expired(path.stat().st_mtime):
                    continue
                stamp = self._stamp(depth)
                os.utime(path, (stamp, stamp))
                held += 1
            except (OSError, ValueError):
                continue
        return held

    def delete(self, keys: Iterable[str]) -> int:
        removed = 0
        for key in keys:
            with contextlib.suppress(OSError, ValueError):
                self._file(key).unlink()
                removed += 1
        self._estimate = None
        return removed

    def entries(self) -> list[Entry]:
        found = []
        for path in self._files():
            try:
                stat = path.stat()
                with open(path, "rb") as handle:
                    header = handle.read(self._HEADER)
            except OSError:
                continue
            if len(header) < self._HEADER or self._expired(stat.st_mtime):
                continue
            parent = header[8:72].decode("ascii", "replace")
            size = stat.st_size - self._HEADER
            found.append(
                Entry(path.name, None if parent == "-" * 64 else parent, size, stat.st_mtime)
            )
        return found

    def put_prefixes(self, entries: Mapping[str, str]) -> None:
        for digest, key in entries.items():
            _write_atomically(self.path / "prefixes" / digest, key.encode())

    def get_prefixes(self, hashes: Sequence[str]) -> dict[str, str]:
        found = {}
        for digest in hashes:
            try:
                key = (self.path / "prefixes" / digest).read_text()
            except (OSError, ValueError):
                continue
            if len(key) == 64 and self._file(key).exists():
                found[digest] = key
        return found

    def _files(self) -> Iterator[Path]:
        for folder in self.path.iterdir():
            if folder.is_dir() and len(folder.name) == 2:
                yield from (p for p in folder.iterdir() if not p.name.startswith("."))

    def _depth(self, path: Path) -> int | None:
        with open(path, "rb") as handle:
            header = handle.read(self._HEADER)
        return int.from_bytes(header[72:80], "little") if len(header) == self._HEADER else None


def _write_atomically(target: Path, *parts: bytes) -> None:
    """Write a file whole or not at all (a temporary file renamed over ``target``), so a
    reader in another process never sees half of it."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        target.parent.mkdir(exist_ok=True)
        with open(temporary, "wb") as handle:
            for part in parts:
                handle.write(part)
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise StoreError(f"could not write {target}: {exc}") from exc
