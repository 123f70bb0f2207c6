"""Saving contexts to a backend as records, each on top of the longest stored prefix.

:class:`Records` keeps, for the contexts this process saved or loaded and still holds, their
record keys and chains, so the next context that extends one (the next turn, the next agent)
is stored as its new positions only: an N-turn conversation takes storage linear in N.
A parent is used only for the positions whose KV is bit-for-bit the same in both contexts.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..context import AVPContext
from ..errors import ContextNotFoundError, StoreError
from .backends import Backend
from .prefixes import prefix_hashes
from .records import Segment, assemble, check_key, decode_record, encode_record

if TYPE_CHECKING:
    import numpy as np

    from ..identity import ModelIdentity
    from ..wire.signing import Key

logger = logging.getLogger("avp_core")

MIN_SHARED = 16
"""Fewest shared positions worth a parent record (shorter prefixes are stored again)."""


@dataclass(eq=False)
class _Saved:
    key: str
    parent: _Saved | None
    depth: int
    identity: ModelIdentity | None = None
    tokens: np.ndarray | None = None
    context: weakref.ref[AVPContext] | None = field(default=None, repr=False)

    def chain(self) -> list[str]:
        """This record's key and its ancestors', leaf first."""
        keys: list[str] = []
        node: _Saved | None = self
        while node is not None:
            keys.append(node.key)
            node = node.parent
        return keys


class Records:
    """Content-addressed, prefix-deduplicated context records in one backend."""

    def __init__(
        self,
        backend: Backend,
        *,
        key: Key | None = None,
        compression: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.backend = backend
        self.key = key
        self.compression = compression
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._by_context: weakref.WeakKeyDictionary[AVPContext, _Saved] = (
            weakref.WeakKeyDictionary()
        )
        self._live: dict[str, _Saved] = {}

    def save(self, context: AVPContext) -> str:
        """Store ``context`` (if not held already) and return its content key."""
        with self._lock:
            known = self._by_context.get(context)
            if known is not None and self.backend.touch(known.chain()) == known.depth + 1:
                return known.key
            parent, shared = self._parent_for(context)
            if parent is not None and self.backend.touch(parent.chain()) != parent.depth + 1:
                self._live.pop(parent.key, None)  # evicted meanwhile: store in full
                parent, shared = None, 0
            saved = self._put(context, parent, shared)
            if saved is None and parent is not None:
                # the context and what it builds on exceed max_bytes: store it whole, so
                # it no longer needs its ancestors (which are evicted in their turn)
                saved = self._put(context, None, 0)
            if saved is None:
                raise StoreError(
                    f"a context of {context.nbytes:,} bytes does not fit in "
                    f"{self.backend.uri} (max_bytes={self.backend.max_bytes})"
                )
            self._register(context, saved)
            return saved.key

    def _put(self, context: AVPContext, parent: _Saved | None, shared: int) -> _Saved | None:
        """Write one record; None if the backend evicted it (or a record it builds on) at
        once to stay within its bounds."""
        record_key, data = encode_record(
            context,
            parent.key if parent else None,
            shared,
            compression=self.compression,
            key=self.key,
        )
        depth = parent.depth + 1 if parent else 0
        self.backend.put(record_key, data, parent.key if parent else None, depth)
        saved = _Saved(record_key, parent, depth)
        if self.backend.touch(saved.chain()) != depth + 1:
            return None
        hashes = prefix_hashes(context.identity, context.sequence)
        self.backend.put_prefixes({h: record_key for end, h in hashes if end > shared})
        return saved

    def find_prefix(self, identity: ModelIdentity | None, tokens: Sequence[int]) -> str | None:
        """The key of a saved context (in any process) sharing the longest block-aligned
        prefix with ``tokens`` (at least one block), or None."""
        hashes = prefix_hashes(identity, tokens)
        found = self.backend.get_prefixes([h for _, h in hashes]) if hashes else {}
        for _, digest in reversed(hashes):
            if digest in found:
                return found[digest]
        return None

    def load(self, record_key: str) -> AVPContext:
        """The context stored under ``record_key`` (the live object if this process holds
        it). Raises ContextNotFoundError if a record of its chain is gone, DecodeError if
        one is corrupt, StoreUnavailableError if the backend cannot be reached."""
        check_key(record_key)
        with self._lock:
            entry = self._live.get(record_key)
            live = entry.context() if entry is not None and entry.context else None
            if entry is not None and live is not None:
                self.backend.touch(entry.chain())
                return live
        chain = self.backend.get_chain(record_key)
        if chain is None:
            raise ContextNotFoundError(
                f"context {record_key[:12]} is not in {self.backend.uri} (evicted, expired, "
                "collected, or saved to another store)"
            )
        segments = [
            decode_record(k, data, key=self.key, max_bytes=self.max_bytes) for k, data in chain
        ]
        context = assemble(segments)
        with self._lock:
            self._register(context, _chain_of(segments))
        return context

    def collect(self, keep: Iterable[str], grace_s: float) -> int:
        """Delete records that no key in ``keep`` builds on and that were not used for
        ``grace_s`` seconds; returns how many were deleted."""
        entries = self.backend.entries()
        parents = {entry.key: entry.parent for entry in entries}
        marked: set[str] = set()
        for start in keep:
            node: str | None = start
            while node is not None and node not in marked:
                marked.add(node)
                node = parents.get(node)
        deadline = self.backend.now() - grace_s
        doomed = [e.key for e in entries if e.key not in marked and e.accessed < deadline]
        with self._lock:
            for key in doomed:
                self._live.pop(key, None)
        return self.backend.delete(doomed) if doomed else 0

    def _register(self, context: AVPContext, saved: _Saved) -> None:
        import numpy as np

        saved.identity = context.identity
        saved.tokens = np.asarray(context.sequence, dtype=np.int64)
        key = saved.key
        saved.context = weakref.ref(context, lambda _: self._forget(key, saved))
        self._by_context[context] = saved
        self._live[key] = saved

    def _forget(self, key: str, saved: _Saved) -> None:
        if self._live.get(key) is saved:
            del self._live[key]

    def _parent_for(self, context: AVPContext) -> tuple[_Saved | None, int]:
        """The live saved context sharing the longest prefix with ``context`` (same model,
        same tokens, bit-identical KV), and that prefix's length (< ``context.seq_len``)."""
        import numpy as np

        sequence = np.asarray(context.sequence, dtype=np.int64)
        best: tuple[_Saved | None, int, AVPContext | None] = (None, 0, None)
        for entry in list(self._live.values()):
            other = entry.context() if entry.context else None
            if other is None or other is context or entry.identity != context.identity:
                continue
            assert entry.tokens is not None
            n = min(len(entry.tokens), len(sequence) - 1)
            if n <= best[1]:
                continue
            mismatch = np.flatnonzero(entry.tokens[:n] != sequence[:n])
            length = int(mismatch[0]) if mismatch.size else n
            if length > best[1]:
                best = (entry, length, other)
        parent, length, other = best
        if parent is None or other is None:
            return None, 0
        length = equal_prefix(other, context, length)
        return (parent, length) if length >= MIN_SHARED else (None, 0)


def equal_prefix(a: AVPContext, b: AVPContext, limit: int) -> int:
    """How many leading positions (up to ``limit``) hold bit-identical KV in both contexts."""
    if len(a.kv) != len(b.kv):
        return 0
    for (ka, va), (kb, vb) in zip(a.kv, b.kv):
        if ka.dtype != kb.dtype or ka.shape[:-2] != kb.shape[:-2] or ka.shape[-1] != kb.shape[-1]:
            return 0
        for x, y in ((ka, kb), (va, vb)):
            x, y = x[..., :limit, :], y[..., :limit, :]
            if x.equal(y):
                continue
            differs = (x != y).any(dim=-1).reshape(-1, x.shape[-2]).any(dim=0)
            limit = int(differs.nonzero()[0, 0])
            if limit == 0:
                return 0
    return limit


def _chain_of(segments: list[Segment]) -> _Saved:
    """Index entries for a chain read from the backend (leaf first); returns the leaf's."""
    node: _Saved | None = None
    for depth, segment in enumerate(reversed(segments)):
        node = _Saved(segment.key, node, depth)
    assert node is not None
    return node
