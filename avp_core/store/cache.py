"""ContextStore: live contexts for reuse (LRU by bytes, TTL, prefix lookup), and saved ones.

A store does two jobs. ``put``/``get``/``longest_prefix`` keep context objects in this
process for reuse. ``save``/``load`` keep context bytes in a backend (memory, a directory,
SQLite, PostgreSQL, Redis) under content keys, each context stored as its new positions on
top of the longest stored prefix, and hand out :class:`ContextRef` references that carriers
(checkpoints, messages, saved state) hold instead of the KV.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..context import AVPContext, common_prefix_length
from ..errors import DecodeError, InvalidRequestError, StoreError, StoreUnavailableError
from ..reuse.index import SegmentIndex
from .backends import Backend, MemoryBackend
from .persist import Records
from .records import ContextRef

if TYPE_CHECKING:
    from ..identity import ModelIdentity
    from ..wire.signing import Key

logger = logging.getLogger("avp_core")


class ContextStore:
    """Live contexts up to ``max_bytes`` (least recently used evicted first) for ``ttl_s``,
    and saved contexts in ``backend``.

    A context larger than ``max_bytes`` is not kept live (``put`` returns False). An entry is
    never replaced by a different context under the same key (``put`` returns False).

    ``backend`` holds saved contexts: a :class:`~avp_core.store.Backend`, or a URI for
    :func:`~avp_core.store.open_backend` (``"memory:"``, a directory path, ``"sqlite:PATH"``,
    ``"postgresql://..."``, ``"redis://..."``); default: memory, bounded by ``max_bytes``.
    ``key`` signs saved records and requires the signature on load (default:
    ``$AVP_SUITE_KEY`` when set); ``compression`` is a zstd level for them. After the backend
    fails to answer, ``save`` and ``load`` fail at once for ``retry_after_s`` seconds instead
    of waiting on a server that is down each time.

    ``write_through`` (default: on when a ``backend`` is given): ``put`` also saves the
    context to the backend, and ``longest_prefix`` (given the model's ``identity``) also finds
    contexts that any process saved there, so a prefix computed by an earlier run, another
    worker or another machine is reused. A backend that fails costs only that reuse: a
    warning, and the live cache goes on.
    """

    def __init__(
        self,
        max_bytes: int = 512 << 20,
        ttl_s: float | None = 3600.0,
        *,
        backend: Backend | str | None = None,
        key: Key | None = None,
        compression: int | None = None,
        write_through: bool | None = None,
        retry_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from ..wire.signing import default_key
        from .connect import open_backend

        if max_bytes <= 0:
            raise InvalidRequestError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self.write_through = backend is not None if write_through is None else write_through
        if backend is None:
            backend = MemoryBackend(max_bytes=max_bytes, ttl_s=ttl_s)
        elif isinstance(backend, str):
            backend = open_backend(backend)
        self._records = Records(backend, key=default_key(key), compression=compression)
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[AVPContext, float]] = OrderedDict()
        self._bytes = 0
        self._index: SegmentIndex | None = None  # built on first use (segment reuse only)

    @property
    def segment_index(self) -> SegmentIndex:
        """Chunk index of the stored contexts, for segment reuse: built on first use, then kept
        in step with what the store holds (a store never asked for it indexes nothing)."""
        with self._lock:
            if self._index is None:
                self._index = SegmentIndex()
                for context, _ in self._entries.values():
                    self._index.add(context)
            return self._index

    @property
    def backend(self) -> Backend:
        """Where :meth:`save` keeps context bytes."""
        return self._records.backend

    def save(self, context: AVPContext) -> ContextRef:
        """Store ``context``'s bytes in the backend and return a reference to them.

        A context that extends one saved (or loaded) before, in this process, is stored as
        its new positions only. Saving the same content again stores nothing. Raises
        :class:`~avp_core.errors.StoreError` (or ``StoreUnavailableError``) when the bytes
        could not be stored: no reference is ever returned for bytes that are not there.
        """
        key = self._guarded(self._records.save, context)
        self._put_live(context)  # kept live too: the next turn usually continues it
        return ContextRef(
            key=key,
            context_id=context.context_id,
            seq_len=context.seq_len,
            model=context.identity.short() if context.identity else None,
            store=self.backend.uri,
        )

    def load(self, ref: ContextRef | str) -> AVPContext:
        """The context a reference (or content key) names: the live object when this process
        holds it, else read from the backend, checked against its key, and kept live.

        Raises :class:`~avp_core.errors.ContextNotFoundError` when its bytes are gone,
        :class:`~avp_core.errors.DecodeError` when they are corrupt or wrongly signed, and
        :class:`~avp_core.errors.StoreUnavailableError` when the backend cannot be reached.
        The context is not trusted: a connector verifies it before its first reuse.
        """
        context = self._guarded(self._records.load, _key(ref))
        if isinstance(ref, ContextRef) and ref.context_id != context.context_id:
            context = dataclasses.replace(context, context_id=ref.context_id)  # same tensors
        self._put_live(context)
        return context

    def collect(self, keep: Iterable[ContextRef | str], *, grace_s: float = 300.0) -> int:
        """Free saved contexts that nothing refers to: delete every record that no reference
        in ``keep`` builds on and that was not used in the last ``grace_s`` seconds (so
        contexts being saved right now survive). Give it every reference that any process
        still needs; a context this process saves again after its record was collected is
        stored again. Returns how many records it deleted."""
        return self._records.collect([_key(ref) for ref in keep], grace_s)

    def _guarded(self, action: Callable[..., Any], *arguments: Any) -> Any:
        """Run a backend action, failing at once while the backend is known to be down."""
        wait = self._down_until - self._clock()
        if wait > 0:
            raise StoreUnavailableError(
                f"context store {self.backend.uri} did not answer; not trying again for "
                f"{wait:.0f} s"
            )
        try:
            return action(*arguments)
        except StoreUnavailableError:
            self._down_until = self._clock() + self.retry_after_s
            raise

    def close(self) -> None:
        """Empty the live cache and close the backend's connections."""
        self.clear()
        self.backend.close()

    @property
    def nbytes(self) -> int:
        """Bytes held now (never more than ``max_bytes``)."""
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def put(self, context: AVPContext, key: str | None = None) -> bool:
        """Keep ``context`` live under ``key`` (default: its ``context_id``); evict to fit.
        With ``write_through``, also save it to the backend.

        Returns False, keeping what is stored, when ``key`` holds a context with other
        content (a context id reused by another context is refused, not replaced).
        """
        if self.write_through:
            try:
                self._guarded(self._records.save, context)
            except StoreError as exc:
                logger.warning("context %s not saved (%s)", context.context_id[:8], exc)
        return self._put_live(context, key)

    def _put_live(self, context: AVPContext, key: str | None = None) -> bool:
        key = key or context.context_id
        size = context.nbytes
        with self._lock:
            held = self._entries.get(key)
            if held is not None and not same_content(held[0], context):
                logger.warning(
                    "not storing a context under key %s: the store holds another context "
                    "there (entries are never replaced)",
                    key[:16],
                )
                return False
            self._remove(key)
            if size > self.max_bytes:
                return False
            self._entries[key] = (context, self._clock())
            self._bytes += size
            if self._index is not None:
                self._index.add(context)
            self._expire()
            while self._bytes > self.max_bytes:
                oldest = next(iter(self._entries))
                self._remove(oldest)
            return key in self._entries

    def get(self, key: str) -> AVPContext | None:
        """The context under ``key`` (marking it recently used), or None if absent or expired."""
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def pop(self, key: str) -> AVPContext | None:
        with self._lock:
            entry = self._entries.get(key)
            self._remove(key)
            return entry[0] if entry else None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._index = None

    def longest_prefix(
        self,
        token_ids: Sequence[int],
        *,
        accept: Callable[[AVPContext], bool] | None = None,
        identity: ModelIdentity | None = None,
    ) -> tuple[AVPContext | None, int]:
        """The stored context sharing the longest token prefix with ``token_ids``, and its length.

        ``accept`` filters candidates (e.g. only contexts whose model handshake is LATENT).
        With ``write_through`` and the model's ``identity``, contexts saved in the backend by
        any process are candidates too (found by block-aligned prefix, then loaded).
        """
        context, length = self._longest_live(token_ids, accept)
        if not (self.write_through and identity is not None) or length >= len(token_ids) - 1:
            return context, length
        try:
            key = self._guarded(self._records.find_prefix, identity, token_ids)
            saved = self.load(key) if key is not None else None
        except (StoreError, DecodeError) as exc:
            logger.warning("no prefix from %s (%s)", self.backend.uri, exc)
            return context, length
        if saved is not None and (accept is None or accept(saved)):
            shared = common_prefix_length(saved.sequence, token_ids)
            if shared > length:
                return saved, shared
        return context, length

    def _longest_live(
        self, token_ids: Sequence[int], accept: Callable[[AVPContext], bool] | None
    ) -> tuple[AVPContext | None, int]:
        with self._lock:
            self._expire()
            candidates = [(key, ctx) for key, (ctx, _) in self._entries.items()]
        best: tuple[str | None, AVPContext | None, int] = (None, None, 0)
        for key, ctx in candidates:
            if accept is not None and not accept(ctx):
                continue
            length = common_prefix_length(ctx.sequence, token_ids)
            if length > best[2]:
                best = (key, ctx, length)
        if best[0] is not None:
            self.get(best[0])  # mark as recently used
        return best[1], best[2]

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[0].nbytes
            held = any(c is entry[0] for c, _ in self._entries.values())
            if self._index is not None and not held:
                self._index.discard(entry[0].context_id)

    def _expire(self) -> None:
        if self.ttl_s is None:
            return
        deadline = self._clock() - self.ttl_s
        for key in [k for k, (_, added) in self._entries.items() if added < deadline]:
            self._remove(key)


def _key(ref: ContextRef | str) -> str:
    return ref.key if isinstance(ref, ContextRef) else ref


def same_content(a: AVPContext, b: AVPContext) -> bool:
    """Whether two contexts hold the same positions, model and KV values."""
    if a is b:
        return True
    if a.sequence != b.sequence or a.identity != b.identity or len(a.kv) != len(b.kv):
        return False
    import torch

    return all(
        torch.equal(k1, k2) and torch.equal(v1, v2) for (k1, v1), (k2, v2) in zip(a.kv, b.kv)
    )


def reusable_prefix(
    store: ContextStore, connector: Any, token_ids: Sequence[int]
) -> tuple[AVPContext | None, int]:
    """The context in ``store`` sharing the longest token prefix with ``token_ids`` that
    ``connector``'s model may reuse (LATENT handshake), and that prefix's length; (None, 0)
    when none shares a token."""
    context, shared = store.longest_prefix(
        token_ids,
        accept=lambda c: connector.check_context(c).latent,
        identity=getattr(connector, "identity", None),
    )
    return (context, shared) if shared else (None, 0)


_default: ContextStore | None = None
_default_lock = threading.Lock()


def default_store() -> ContextStore:
    """This process's shared store (memory backend), for carriers given no store: contexts
    saved there last as long as the process (512 MiB, least recently used evicted first)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ContextStore(ttl_s=None)
        return _default
