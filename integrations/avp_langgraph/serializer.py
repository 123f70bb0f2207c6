"""AVPSerializer: LangGraph checkpoints that keep contexts, through the AVP wire codec.

Contexts found in a checkpoint (carried by AI messages, or stored as values such as the
``contexts`` channel) are encoded with :meth:`AVPContext.to_bytes` and stored next to the
rest of the value, which :class:`JsonPlusSerializer` encodes as usual. Loading decodes them
with :meth:`AVPContext.from_bytes` (bounded, validated, no code execution) and puts them back
on their messages, so a graph resumed in another process reuses them. Nothing is pickled.
"""

from __future__ import annotations

import struct
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from avp_core.context import AVPContext
from avp_core.errors import DecodeError

from .messages import METADATA_KEY, ContextHandle, context_of, handle_of

TYPE = "avp"
"""The type tag of values that hold contexts (``dumps_typed`` returns ``(TYPE, bytes)``)."""
MAGIC = b"AVPCKPT1"
_MARKER = "__avp_context__"


class AVPSerializer(JsonPlusSerializer):
    """A :class:`JsonPlusSerializer` that stores contexts through the AVP wire codec.

    ``compression`` is ``None`` or a zstd level (1-22) for the KV bytes. Other keyword
    arguments go to :class:`JsonPlusSerializer`. Values without contexts are stored exactly as
    :class:`JsonPlusSerializer` stores them.
    """

    def __init__(self, *, compression: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.compression = compression

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        found: dict[str, AVPContext] = {}
        stripped = _strip(obj, found)
        if not found:
            return super().dumps_typed(obj)
        inner_type, data = super().dumps_typed(stripped)
        blobs = {key: ctx.to_bytes(compression=self.compression) for key, ctx in found.items()}
        return TYPE, _pack(inner_type, data, blobs)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, payload = data
        if type_ != TYPE:
            return super().loads_typed(data)
        inner_type, inner, blobs = _unpack(payload)
        contexts = {key: AVPContext.from_bytes(blob, copy=True) for key, blob in blobs.items()}
        return _restore(super().loads_typed((inner_type, inner)), contexts)


def _strip(value: Any, found: dict[str, AVPContext]) -> Any:
    """Collect contexts; return ``value`` with bare contexts replaced by markers (a new
    container only where something was replaced)."""
    if isinstance(value, AVPContext):
        found[value.context_id] = value
        return {_MARKER: value.context_id}
    if isinstance(value, BaseMessage):
        context = context_of(value)
        if context is not None:
            found[context.context_id] = context
        return value
    if isinstance(value, dict):
        items = {key: _strip(item, found) for key, item in value.items()}
        changed = any(items[key] is not value[key] for key in value)
        return items if changed else value
    if isinstance(value, (list, tuple)):
        items_list = [_strip(item, found) for item in value]
        if all(new is old for new, old in zip(items_list, value)):
            return value
        return type(value)(items_list) if isinstance(value, list) else tuple(items_list)
    return value


def _restore(value: Any, contexts: dict[str, AVPContext]) -> Any:
    """Put decoded contexts back: markers become contexts, messages get their live handle."""
    if isinstance(value, BaseMessage):
        handle = handle_of(value)
        if handle is not None and handle["context_id"] in contexts:
            context = contexts[handle["context_id"]]
            value.response_metadata[METADATA_KEY] = ContextHandle(dict(handle), context)
        return value
    if isinstance(value, dict):
        if set(value) == {_MARKER} and value[_MARKER] in contexts:
            return contexts[value[_MARKER]]
        for key, item in value.items():
            value[key] = _restore(item, contexts)
        return value
    if isinstance(value, list):
        value[:] = [_restore(item, contexts) for item in value]
        return value
    if isinstance(value, tuple):
        return tuple(_restore(item, contexts) for item in value)
    return value


def _pack(inner_type: str, data: bytes, blobs: dict[str, bytes]) -> bytes:
    """MAGIC, the inner (type, bytes), then each context id and its AVP message."""
    kind = inner_type.encode()
    parts = [MAGIC, struct.pack("<H", len(kind)), kind, struct.pack("<Q", len(data)), data]
    parts.append(struct.pack("<I", len(blobs)))
    for key, blob in blobs.items():
        raw = key.encode()
        parts += [struct.pack("<H", len(raw)), raw, struct.pack("<Q", len(blob)), blob]
    return b"".join(parts)


def _unpack(payload: bytes) -> tuple[str, bytes, dict[str, memoryview]]:
    view = memoryview(payload)
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise DecodeError("not an AVPSerializer checkpoint value (bad magic)")
    offset = len(MAGIC)

    def take(size: int) -> memoryview:
        nonlocal offset
        if size > len(view) - offset:
            raise DecodeError("truncated AVPSerializer checkpoint value")
        chunk = view[offset : offset + size]
        offset += size
        return chunk

    def number(fmt: str) -> int:
        return int(struct.unpack(fmt, take(struct.calcsize(fmt)))[0])

    inner_type = bytes(take(number("<H"))).decode()
    inner = bytes(take(number("<Q")))
    blobs: dict[str, memoryview] = {}
    for _ in range(number("<I")):
        key = bytes(take(number("<H"))).decode()
        blobs[key] = take(number("<Q"))
    if offset != len(view):
        raise DecodeError("trailing bytes after an AVPSerializer checkpoint value")
    return inner_type, inner, blobs
