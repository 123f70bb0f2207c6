"""LatentMessage: an AutoGen chat message that carries text plus an AVPContext handle.

In one process the message holds the live context object, so the next agent continues it
without any copy or decode. ``dump()`` (and so every team ``save_state``, and the gRPC
runtime's serializer) saves the context to a context store and writes a small reference;
``load()`` reads the reference back, and the context is loaded from the store when an agent
first asks for it. With ``LatentMessage.inline = True`` the KV goes into the dump itself, as
base64 AVP wire bytes. Nothing is pickled.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from autogen_agentchat.messages import BaseChatMessage, BaseTextChatMessage
from pydantic import PrivateAttr

from avp_core.context import AVPContext
from avp_core.errors import DecodeError, StoreError
from avp_core.store import ContextRef, ContextStore, default_store
from avp_core.wire import DEFAULT_MAX_BYTES
from avp_core.wire.signing import Key

logger = logging.getLogger("avp_autogen")

CONTEXT_KEY = "avp_context"
"""Key of the base64 AVP wire bytes in a dumped :class:`LatentMessage` (``inline``)."""
REF_KEY = "avp_ref"
"""Key of the context's :class:`~avp_core.store.ContextRef` in a dumped message."""


class LatentMessage(BaseTextChatMessage):
    """A text chat message plus the :class:`~avp_core.context.AVPContext` that produced it.

    The text is always there: ``to_text``, ``to_model_text`` and ``to_model_message`` give
    only the text, so any AutoGen agent can read the message. AVP-aware agents on the same
    model continue :attr:`context` instead of re-reading the text.
    """

    type: Literal["LatentMessage"] = "LatentMessage"

    store: ClassVar[ContextStore | None] = None
    """Where :meth:`dump` saves contexts and references are loaded from (None: this
    process's memory store, :func:`~avp_core.store.default_store`). Give a shared store
    (Redis, PostgreSQL, a directory) for state or messages read by other processes."""
    inline: ClassVar[bool] = False
    """Put the KV bytes into :meth:`dump`'s output (base64) instead of a reference."""
    wire_compression: ClassVar[int | None] = None
    """zstd level used by :meth:`dump` for inline context bytes (None: uncompressed)."""
    max_context_bytes: ClassVar[int] = DEFAULT_MAX_BYTES
    """Largest context :meth:`load` accepts (decoded bytes); larger ones are dropped."""
    key: ClassVar[Key | None] = None
    """Key that :meth:`dump` signs inline contexts with and :meth:`load` requires (None: the
    ``AVP_SUITE_KEY`` environment variable when set, else unsigned). A store signs its
    records with its own key."""

    _context: AVPContext | None = PrivateAttr(default=None)
    _ref: ContextRef | None = PrivateAttr(default=None)

    def __init__(self, *, context: AVPContext | None = None, **data: Any) -> None:
        super().__init__(**data)
        self._context = context

    @property
    def context(self) -> AVPContext | None:
        """The attention state behind this message, or None (text only). A message loaded
        from a reference reads its context from the store here, the first time."""
        ref = self._ref
        if self._context is None and ref is not None:
            self._context = _load_ref(ref, self.id)
            self._ref = None if self._context is None else ref
        return self._context

    @property
    def ref(self) -> ContextRef | None:
        """The stored context's reference, once :meth:`dump` saved it or :meth:`load` read it."""
        return self._ref

    def dump(self, *, include_context: bool = True) -> Mapping[str, Any]:
        """JSON-able dict. The context is saved to :attr:`store` and referenced (a context
        loaded from a reference and never used keeps that reference, unread), or with
        :attr:`inline` goes into the dict as base64 AVP wire bytes. If the store fails, the
        dump holds the text only, and a warning says so."""
        data = dict(super().dump())
        data[CONTEXT_KEY] = None
        if not include_context:
            return data
        if self.inline:
            if (context := self.context) is not None:
                wire = context.to_bytes(compression=self.wire_compression, key=self.key)
                data[CONTEXT_KEY] = base64.b64encode(wire).decode("ascii")
        elif self._context is None and self._ref is not None:
            data[REF_KEY] = self._ref.to_dict()
        elif self._context is not None:
            try:
                self._ref = _store().save(self._context)
                data[REF_KEY] = self._ref.to_dict()
            except StoreError as exc:
                logger.warning("message %s: context not saved (%s); text only", self.id, exc)
        return data

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> LatentMessage:
        """Rebuild a message from :meth:`dump` output.

        Context bytes that do not decode (corrupt, truncated, too large, unsigned or wrongly
        signed where a key is set) are dropped with a warning: the message keeps its text and
        the receiver falls back to it. A context that decodes is still verified by the
        receiving model before it is reused.
        """
        fields = dict(data)
        encoded = fields.pop(CONTEXT_KEY, None)
        reference = fields.pop(REF_KEY, None)
        message = cls.model_validate(fields)
        if encoded:
            message._context = _decode_context(encoded, cls.max_context_bytes, message.id, cls.key)
        elif reference is not None:
            try:
                message._ref = ContextRef.from_dict(reference)
            except DecodeError as exc:
                logger.warning("message %s: bad context reference (%s); text only", message.id, exc)
        return message


def _decode_context(
    encoded: Any, max_bytes: int, message_id: str, key: Key | None
) -> AVPContext | None:
    try:
        if not isinstance(encoded, str):
            raise DecodeError(f"expected base64 text, got {type(encoded).__name__}")
        if len(encoded) > (max_bytes + 64) * 4 // 3 + 4:
            raise DecodeError(f"context over max_context_bytes={max_bytes}")
        raw = base64.b64decode(encoded, validate=True)
        return AVPContext.from_bytes(raw, max_bytes=max_bytes, key=key)
    except ValueError as exc:  # DecodeError and binascii.Error are ValueErrors
        logger.warning("message %s: dropping its context (%s); using its text", message_id, exc)
        return None


def _load_ref(ref: ContextRef, message_id: str) -> AVPContext | None:
    try:
        return _store().load(ref)
    except (StoreError, DecodeError) as exc:
        logger.warning("message %s: context not loaded (%s); using its text", message_id, exc)
        return None


def latent_context(message: BaseChatMessage) -> AVPContext | None:
    """The context a chat message carries, if it is a :class:`LatentMessage` that has one."""
    return message.context if isinstance(message, LatentMessage) else None


def _store() -> ContextStore:
    store = LatentMessage.store
    return store if store is not None else default_store()  # an empty store is falsy
