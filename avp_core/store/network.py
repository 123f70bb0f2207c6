"""Networked backends: PostgreSQL (``psycopg``) and Redis (``redis``), for stores shared by
processes on several machines. Both time out instead of hanging: a server that is down or
slow raises :class:`~avp_core.errors.StoreUnavailableError`, which the adapters turn into
the text path."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import MissingDependencyError, StoreError, StoreUnavailableError
from .backends import Backend, Entry
from .sql import SQLBackend


class PostgresBackend(SQLBackend):
    """Records in a PostgreSQL table (``avp_contexts``, created if missing).

    ``dsn`` is a libpq connection string such as ``postgresql://user@host:5432/db``.
    ``timeout_s`` bounds connecting and every statement.
    """

    _placeholder = "%b"  # binary parameters and results: no hex text for 60 MB blobs
    _blob = "BYTEA"

    def __init__(
        self,
        dsn: str,
        max_bytes: int | None = None,
        ttl_s: float | None = None,
        *,
        table: str = "avp_contexts",
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_bytes, ttl_s, table=table, clock=clock)
        try:
            import psycopg
        except ImportError as exc:
            raise MissingDependencyError("psycopg", "postgres") from exc
        self._psycopg = psycopg
        self.dsn = dsn
        self.timeout_s = timeout_s
        self.uri = _redact(dsn)
        self._connection: Any = None
        self._setup()
        # KV bytes do not compress: store them as they are (no pglz pass over each blob)
        self._run(f"ALTER TABLE {self.data_table} ALTER COLUMN data SET STORAGE EXTERNAL")

    def _connect(self) -> Any:
        if self._connection is None or self._connection.closed:
            from psycopg.conninfo import conninfo_to_dict

            given = conninfo_to_dict(self.dsn).get("options") or ""  # a DSN's own search_path...
            timeout = f"-c statement_timeout={int(self.timeout_s * 1000)}"
            self._connection = self._psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=max(1, round(self.timeout_s)),
                options=f"{given} {timeout}".strip(),
            )
        return self._connection

    def _run(self, sql: str, params: Sequence[Any] = (), *, fetch: bool = False) -> list[Any]:
        psycopg = self._psycopg
        with self._lock:
            try:
                with self._connect().cursor(binary=True) as cursor:
                    cursor.execute(sql, tuple(params))
                    return cursor.fetchall() if fetch else []
            except (psycopg.OperationalError, psycopg.errors.QueryCanceled) as exc:
                self._drop_connection()
                raise StoreUnavailableError(
                    f"PostgreSQL context store {self.uri} is unavailable: {_first_line(exc)}"
                ) from exc
            except psycopg.Error as exc:
                raise StoreError(f"context store {self.uri}: {_first_line(exc)}") from exc

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # must not mask the error that broke it
                self._connection.close()
            self._connection = None

    def close(self) -> None:
        with self._lock:
            self._drop_connection()


class RedisBackend(Backend):
    """Records in Redis under ``prefix`` (default ``avp:``): each record a hash (data,
    parent, depth), a sorted set of last uses, a hash of sizes. ``ttl_s`` is also set as
    each record's Redis expiry, so records expire even if no process sweeps them.

    ``url`` is a Redis URL such as ``redis://127.0.0.1:6379/0``; ``timeout_s`` bounds
    connecting and every command.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        max_bytes: int | None = None,
        ttl_s: float | None = None,
        *,
        prefix: str = "avp:",
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_bytes, ttl_s, clock=clock)
        try:
            import redis
        except ImportError as exc:
            raise MissingDependencyError("redis", "redis") from exc
        self._redis = redis
        self.uri = _redact(url)
        self.prefix = prefix
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._used, self._sizes = f"{prefix}used", f"{prefix}sizes"
        self._prefixes = f"{prefix}prefixes"  # prefix hash -> record key (stale ones skipped)
        self._call(self._client.ping)

    def _record(self, key: str) -> str:
        return f"{self.prefix}r:{key}"

    def _call(self, action: Callable[..., Any], *args: Any) -> Any:
        try:
            return action(*args)
        except (self._redis.ConnectionError, self._redis.TimeoutError) as exc:
            raise StoreUnavailableError(
                f"Redis context store {self.uri} is unavailable: {exc}"
            ) from exc
        except self._redis.RedisError as exc:
            raise StoreError(f"context store {self.uri}: {exc}") from exc

    def put(self, key: str, data: bytes, parent: str | None = None, depth: int = 0) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            mapping: dict[Any, Any] = {"data": data, "parent": parent or "", "depth": depth}
            pipe.hset(self._record(key), mapping=mapping)
            if self.ttl_s is not None:
                pipe.expire(self._record(key), max(1, round(self.ttl_s)))
            pipe.hset(self._sizes, key, len(data))
            pipe.zadd(self._used, {key: self._stamp(depth)})
            pipe.execute()

        if not self._call(self._client.exists, self._record(key)):
            self._call(write)
        self.touch([key])
        self.expire()
        self.evict()

    def _read(self, key: str) -> tuple[bytes, str | None] | None:
        def run() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            pipe.hmget(self._record(key), ["data", "parent"])
            pipe.zscore(self._used, key)
            return list(pipe.execute())

        (data, parent), used = self._call(run)
        if data is None or self._expired(used or 0):
            return None
        return bytes(data), (parent.decode() or None) if parent else None

    def touch(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0

        def run() -> int:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hget(self._record(key), "depth")
            depths = pipe.execute()
            now = self._clock()
            pipe = self._client.pipeline(transaction=False)
            for key, depth in zip(keys, depths):
                if depth is not None:
                    pipe.zadd(self._used, {key: now - int(depth) * 1e-6})
                    if self.ttl_s is not None:
                        pipe.expire(self._record(key), max(1, round(self.ttl_s)))
            pipe.execute()
            return sum(1 for depth in depths if depth is not None)

        return int(self._call(run))

    def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        if not keys:
            return 0

        def run() -> int:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(*[self._record(key) for key in keys])
            pipe.hdel(self._sizes, *keys)
            pipe.zrem(self._used, *keys)
            return int(pipe.execute()[0])

        return int(self._call(run))

    def expire(self) -> int:
        """Remove records unused for ``ttl_s`` (one range query, not a listing of all)."""
        if self.ttl_s is None:
            return 0
        stale = self._call(self._client.zrangebyscore, self._used, "-inf", f"({self._deadline()}")
        return self.delete([key.decode() for key in stale]) if stale else 0

    def evict(self) -> int:
        """Evict as :meth:`Backend.evict` does, listing the records only when over the bound."""
        if self.max_bytes is None:
            return 0
        sizes = self._call(self._client.hvals, self._sizes)
        if sum(int(size) for size in sizes) <= self.max_bytes:
            return 0
        return super().evict()

    def entries(self) -> list[Entry]:
        def run() -> list[Entry]:
            used: list[Any] = self._client.zrange(self._used, 0, -1, withscores=True)
            if not used:
                return []
            keys = [key.decode() for key, _ in used]
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(self._record(key), ["parent"])
            pipe.hmget(self._sizes, keys)
            *parents, sizes = pipe.execute()
            found, gone = [], []
            for key, (_, accessed), parent, size in zip(keys, used, parents, sizes):
                if parent[0] is None:  # Redis expired the record itself
                    gone.append(key)
                    continue
                held = parent[0].decode() or None
                found.append(Entry(key, held, int(size or 0), float(accessed)))
            if gone:
                pipe = self._client.pipeline(transaction=True)
                pipe.zrem(self._used, *gone)
                pipe.hdel(self._sizes, *gone)
                pipe.execute()
            return found

        return list(self._call(run))

    def put_prefixes(self, entries: Mapping[str, str]) -> None:
        if entries:
            mapping: dict[Any, Any] = dict(entries)
            self._call(lambda: self._client.hset(self._prefixes, mapping=mapping))

    def get_prefixes(self, hashes: Sequence[str]) -> dict[str, str]:
        if not hashes:
            return {}

        def run() -> dict[str, str]:
            keys: list[Any] = self._client.hmget(self._prefixes, list(hashes))
            named = {h: bytes(k).decode() for h, k in zip(hashes, keys) if k is not None}
            pipe = self._client.pipeline(transaction=False)
            for key in named.values():
                pipe.exists(self._record(key))
            held = pipe.execute()
            return {h: key for (h, key), there in zip(named.items(), held) if there}

        return dict(self._call(run))

    def drop(self) -> None:
        """Delete every key under this backend's prefix."""

        def run() -> None:
            for name in self._client.scan_iter(match=f"{self.prefix}*", count=1000):
                self._client.delete(name)

        self._call(run)

    def close(self) -> None:
        self._client.close()


def _redact(uri: str) -> str:
    """``uri`` without a password (for logs, errors and references)."""
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"
    return uri


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
