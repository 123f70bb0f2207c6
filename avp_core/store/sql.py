"""SQL backends: records in SQL tables, in a SQLite file (here) or PostgreSQL
(:class:`~avp_core.store.network.PostgresBackend`)."""

from __future__ import annotations

import os
import sqlite3
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidRequestError, StoreError
from .backends import _DEPTH_STEP, Backend, Entry


class SQLBackend(Backend):
    """Records in two SQL tables: ``avp_contexts`` (by default) holds each record's key,
    parent, depth, size and last use, and ``avp_contexts_data`` its bytes, so marking a
    record used never rewrites its bytes. The SQLite and PostgreSQL backends differ only in
    their connection and placeholders."""

    _placeholder = "?"
    _blob = "BLOB"

    def __init__(
        self,
        max_bytes: int | None = None,
        ttl_s: float | None = None,
        *,
        table: str = "avp_contexts",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_bytes, ttl_s, clock=clock)
        if not table.replace("_", "").isalnum():
            raise InvalidRequestError(f"table must be letters, digits and _, got {table!r}")
        self.table = table
        self.data_table = f"{table}_data"
        self.prefix_table = f"{table}_prefixes"

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = (), *, fetch: bool = False) -> list[Any]:
        """Execute one statement (committed); the rows if ``fetch``."""

    def _setup(self) -> None:
        self._run(
            f"CREATE TABLE IF NOT EXISTS {self.data_table} "
            f"(key TEXT PRIMARY KEY, data {self._blob} NOT NULL)"
        )
        self._run(
            f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY, parent TEXT, "
            "depth INTEGER NOT NULL, size INTEGER NOT NULL, accessed DOUBLE PRECISION NOT NULL)"
        )
        self._run(
            f"CREATE TABLE IF NOT EXISTS {self.prefix_table} "
            "(hash TEXT PRIMARY KEY, key TEXT NOT NULL)"
        )

    def _sql(self, text: str) -> str:
        return text.replace("?", self._placeholder)

    def _in(self, count: int) -> str:
        return "(" + ",".join([self._placeholder] * count) + ")"

    def _batches(self, sql: str, keys: Sequence[str], *head: Any) -> list[Any]:
        """Run ``sql`` (whose ``IN {}`` takes the keys) over ``keys`` in batches; its rows."""
        rows: list[Any] = []
        for start in range(0, len(keys), 500):
            batch = list(keys[start : start + 500])
            statement = self._sql(sql.format(self._in(len(batch))))
            rows += self._run(statement, (*head, *batch), fetch=True)
        return rows

    def put(self, key: str, data: bytes, parent: str | None = None, depth: int = 0) -> None:
        self._run(  # the bytes first: a record's row means its bytes are there
            self._sql(
                f"INSERT INTO {self.data_table} (key, data) VALUES (?, ?) "
                "ON CONFLICT (key) DO NOTHING"
            ),
            (key, data),
        )
        self._run(
            self._sql(
                f"INSERT INTO {self.table} (key, parent, depth, size, accessed) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
            ),
            (key, parent, depth, len(data), self._stamp(depth)),
        )
        self.touch([key])
        self.expire()
        self.evict()

    def _read(self, key: str) -> tuple[bytes, str | None] | None:
        rows = self._run(
            self._sql(
                f"SELECT d.data, m.parent FROM {self.table} m JOIN {self.data_table} d "
                "ON d.key = m.key WHERE m.key = ? AND m.accessed >= ?"
            ),
            (key, self._deadline()),
            fetch=True,
        )
        return (bytes(rows[0][0]), rows[0][1]) if rows else None

    def get_chain(self, key: str) -> list[tuple[str, bytes]] | None:
        links = self._run(
            self._sql(
                f"WITH RECURSIVE chain(key, parent, step) AS ("
                f"SELECT key, parent, 0 FROM {self.table} WHERE key = ? AND accessed >= ? "
                f"UNION ALL SELECT t.key, t.parent, chain.step + 1 FROM {self.table} t "
                f"JOIN chain ON t.key = chain.parent WHERE t.accessed >= ?) "
                "SELECT key, parent FROM chain ORDER BY step"
            ),
            (key, self._deadline(), self._deadline()),
            fetch=True,
        )
        if not links or links[-1][1] is not None:
            return None  # missing, or an ancestor is gone
        keys = [str(row[0]) for row in links]
        blobs = {
            str(found): bytes(data)
            for found, data in self._batches(
                f"SELECT key, data FROM {self.data_table} WHERE key IN {{}}", keys
            )
        }
        if len(blobs) != len(keys):
            return None  # deleted meanwhile
        self.touch(keys)
        return [(k, blobs[k]) for k in keys]

    def touch(self, keys: Sequence[str]) -> int:
        sql = (
            f"UPDATE {self.table} SET accessed = ? - depth * {_DEPTH_STEP} "
            "WHERE accessed >= ? AND key IN {} RETURNING key"
        )
        return len(self._batches(sql, keys, self._clock(), self._deadline())) if keys else 0

    def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        if not keys:
            return 0
        removed = self._batches(f"DELETE FROM {self.table} WHERE key IN {{}} RETURNING key", keys)
        self._batches(f"DELETE FROM {self.data_table} WHERE key IN {{}} RETURNING key", keys)
        self._batches(f"DELETE FROM {self.prefix_table} WHERE key IN {{}} RETURNING key", keys)
        return len(removed)

    def put_prefixes(self, entries: Mapping[str, str]) -> None:
        for digest, key in entries.items():
            self._run(
                self._sql(
                    f"INSERT INTO {self.prefix_table} (hash, key) VALUES (?, ?) "
                    "ON CONFLICT (hash) DO UPDATE SET key = excluded.key"
                ),
                (digest, key),
            )

    def get_prefixes(self, hashes: Sequence[str]) -> dict[str, str]:
        sql = (
            f"SELECT p.hash, p.key FROM {self.prefix_table} p JOIN {self.table} m "
            "ON m.key = p.key WHERE m.accessed >= ? AND p.hash IN {}"
        )
        rows = self._batches(sql, hashes, self._deadline()) if hashes else []
        return {str(digest): str(key) for digest, key in rows}

    def entries(self) -> list[Entry]:
        rows = self._run(
            self._sql(f"SELECT key, parent, size, accessed FROM {self.table} WHERE accessed >= ?"),
            (self._deadline(),),
            fetch=True,
        )
        return [Entry(str(k), p, int(s), float(a)) for k, p, s, a in rows]

    def nbytes(self) -> int:
        rows = self._run(
            self._sql(f"SELECT COALESCE(SUM(size), 0) FROM {self.table} WHERE accessed >= ?"),
            (self._deadline(),),
            fetch=True,
        )
        return int(rows[0][0])

    def expire(self) -> int:
        if self.ttl_s is None:
            return 0
        rows = self._run(
            self._sql(f"SELECT key FROM {self.table} WHERE accessed < ?"),
            (self._deadline(),),
            fetch=True,
        )
        return self.delete([str(row[0]) for row in rows])

    def evict(self) -> int:
        if self.max_bytes is None or self.nbytes() <= self.max_bytes:
            return 0
        return super().evict()

    def drop(self) -> None:
        """Delete the tables and everything in them."""
        for table in (self.table, self.data_table, self.prefix_table):
            self._run(f"DROP TABLE IF EXISTS {table}")


class SQLiteBackend(SQLBackend):
    """Records in a SQLite database file (embedded; survives restarts; processes on one
    machine can share it)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int | None = None,
        ttl_s: float | None = None,
        *,
        table: str = "avp_contexts",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_bytes, ttl_s, table=table, clock=clock)
        self.path = Path(path)
        self.uri = f"sqlite:{self.path.resolve()}"
        try:
            self._connection = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            # a crash may lose the last records written (a cache can), never corrupt the file
            self._connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path} as a context store: {exc}") from exc
        self._setup()

    def _run(self, sql: str, params: Sequence[Any] = (), *, fetch: bool = False) -> list[Any]:
        with self._lock:
            try:
                cursor = self._connection.execute(sql, tuple(params))
                return cursor.fetchall() if fetch else []
            except sqlite3.Error as exc:
                raise StoreError(f"context store {self.uri}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._connection.close()
