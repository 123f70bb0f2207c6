"""LatentMessage: an AutoGen chat message that carries text plus an AVPContext handle.

In one process the message holds the live context object, so the next agent continues it
without any copy or decode. ``dump()`` (and so every team ``save_state``) writes the context
through the AVP wire codec as base64 text; ``load()`` decodes it back. Nothing is pickled.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from autogen_agentchat.messages import BaseChatMessage, BaseTextChatMessage
from pydantic import PrivateAttr

from avp_core.context import AVPContext
from avp_core.errors import DecodeError
from avp_core.wire import DEFAULT_MAX_BYTES
from avp_core.wire.signing import Key

logger = logging.getLogger("avp_autogen")

CONTEXT_KEY = "avp_context"
"""Key of the base64 AVP wire bytes in a dumped :class:`LatentMessage`."""


class LatentMessage(BaseTextChatMessage):
    """A text chat message plus the :class:`~avp_core.context.AVPContext` that produced it.

    The text is always there: ``to_text``, ``to_model_text`` and ``to_model_message`` give
    only the text, so any AutoGen agent can read the message. AVP-aware agents on the same
    model continue :attr:`context` instead of re-reading the text.
    """

    type: Literal["LatentMessage"] = "LatentMessage"

    wire_compression: ClassVar[int | None] = None
    """zstd level used by :meth:`dump` for the context bytes (None: uncompressed)."""
    max_context_bytes: ClassVar[int] = DEFAULT_MAX_BYTES
    """Largest context :meth:`load` accepts (decoded bytes); larger ones are dropped."""
    key: ClassVar[Key | None] = None
    """Key that :meth:`dump` signs contexts with and :meth:`load` requires (None: the
    ``AVP_SUITE_KEY`` environment variable when set, else unsigned)."""

    _context: AVPContext | None = PrivateAttr(default=None)

    def __init__(self, *, context: AVPContext | None = None, **data: Any) -> None:
        super().__init__(**data)
        self._context = context

    @property
    def context(self) -> AVPContext | None:
        """The attention state behind this message, or None (text only)."""
        return self._context

    def dump(self, *, include_context: bool = True) -> Mapping[str, Any]:
        """JSON-able dict; the context goes through the AVP wire codec as base64 bytes."""
        data = dict(super().dump())
        encoded = None
        if include_context and self._context is not None:
            wire = self._context.to_bytes(compression=self.wire_compression, key=self.key)
            encoded = base64.b64encode(wire).decode("ascii")
        data[CONTEXT_KEY] = encoded
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
        message = cls.model_validate(fields)
        if encoded:
            message._context = _decode_context(encoded, cls.max_context_bytes, message.id, cls.key)
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


def latent_context(message: BaseChatMessage) -> AVPContext | None:
    """The context a chat message carries, if it is a :class:`LatentMessage` that has one."""
    return message.context if isinstance(message, LatentMessage) else None
