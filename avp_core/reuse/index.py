"""Find token runs of a new prompt that earlier contexts already computed, at any position.

Contexts are indexed by the content of fixed-size chunks taken at a fixed stride (16 tokens
by default): a lookup hashes the prompt's windows, and each hit is extended both ways token
by token, so any common run of ``2 * chunk - 1`` tokens or more is found without scanning
stored contexts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..context import LATENT, AVPContext

MAX_HITS_PER_CHUNK = 8
"""Candidates examined per matching chunk (the most recently indexed win)."""


@dataclass(frozen=True)
class Segment:
    """``length`` positions of ``source`` from ``source_start`` that the new prompt holds at
    ``start``: the same tokens, computed under another prefix (or at another position)."""

    source: AVPContext
    source_start: int
    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def shift(self) -> int:
        """Positions the segment moves by (new minus old)."""
        return self.start - self.source_start


class SegmentIndex:
    """Chunk-content index over contexts; thread-safe. Holds references to the contexts."""

    def __init__(self, chunk_tokens: int = 16) -> None:
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
        self.chunk_tokens = chunk_tokens
        self._lock = threading.Lock()
        self._chunks: dict[tuple[int, ...], list[tuple[str, int]]] = {}
        self._contexts: dict[str, AVPContext] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._contexts)

    def add(self, context: AVPContext) -> None:
        """Index ``context`` (again: a no-op)."""
        size, sequence = self.chunk_tokens, context.sequence
        with self._lock:
            if context.context_id in self._contexts:
                return
            self._contexts[context.context_id] = context
            for start in range(0, len(sequence) - size + 1, size):
                key = sequence[start : start + size]
                if LATENT not in key:
                    self._chunks.setdefault(key, []).append((context.context_id, start))

    def discard(self, context_id: str) -> None:
        """Forget a context (absent: a no-op)."""
        size = self.chunk_tokens
        with self._lock:
            context = self._contexts.pop(context_id, None)
            if context is None:
                return
            sequence = context.sequence
            for start in range(0, len(sequence) - size + 1, size):
                hits = self._chunks.get(sequence[start : start + size])
                if hits is None:
                    continue
                hits[:] = [hit for hit in hits if hit[0] != context_id]
                if not hits:
                    del self._chunks[sequence[start : start + size]]

    def hits(self, window: tuple[int, ...]) -> list[tuple[AVPContext, int]]:
        """Contexts holding ``window`` (one chunk) at a chunk boundary, newest first."""
        with self._lock:
            found = self._chunks.get(window, ())
            return [(self._contexts[cid], at) for cid, at in reversed(found)][:MAX_HITS_PER_CHUNK]


def find_segments(
    prompt: Sequence[int],
    indexes: Iterable[SegmentIndex],
    *,
    start: int,
    end: int,
    min_tokens: int,
    accept: Callable[[AVPContext], bool] | None = None,
) -> list[Segment]:
    """Non-overlapping runs of ``prompt[start:end]`` found in the indexed contexts, left to
    right, each the longest available where it begins and at least ``min_tokens`` long;
    ``accept`` filters the contexts (e.g. only those of the same model)."""
    indexes = [index for index in indexes if len(index)]
    if not indexes:
        return []
    chunk = min(index.chunk_tokens for index in indexes)
    prompt = tuple(prompt)
    found: list[Segment] = []
    floor, at = start, start
    while at + chunk <= end:
        best: Segment | None = None
        for index in indexes:
            window = prompt[at : at + index.chunk_tokens]
            for source, source_at in index.hits(window):
                if accept is not None and not accept(source):
                    continue
                segment = _extend(prompt, source, source_at, at, floor, end)
                if best is None or segment.length > best.length:
                    best = segment
        if best is not None and best.length >= min_tokens:
            found.append(best)
            floor = at = best.end
        else:
            at += 1
    return found


def _extend(
    prompt: tuple[int, ...], source: AVPContext, source_at: int, at: int, floor: int, end: int
) -> Segment:
    """The run through the matching chunk, grown backwards (not below ``floor``) and forwards
    (not past ``end``) while the tokens agree."""
    sequence = source.sequence
    back = 0
    while at - back > floor and source_at - back > 0:
        if prompt[at - back - 1] != sequence[source_at - back - 1]:
            break
        back += 1
    ahead = 0
    limit = min(end - at, len(sequence) - source_at)
    while ahead < limit and prompt[at + ahead] == sequence[source_at + ahead]:
        ahead += 1
    return Segment(source, source_at - back, at - back, back + ahead)
