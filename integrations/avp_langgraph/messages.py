"""How AVP contexts ride on LangChain messages, and how messages become chat-template turns.

An :class:`AIMessage` from :class:`~avp_langgraph.AVPChatModel` carries
``response_metadata["avp"]``: a :class:`ContextHandle`, which is a plain ``dict`` of JSON
values (ids, token counts, bytes, usage) that also holds the live :class:`AVPContext` as an
attribute. Every serializer sees only the dict items, so messages with handles serialize to a
compact description and never to tensors; copies of the message (``model_copy``,
``copy.deepcopy``, LangGraph state updates, chunk aggregation) keep the same immutable
context. A message rebuilt from its serialized form keeps the description but not the
tensors; :class:`~avp_langgraph.AVPSerializer` restores them from checkpoints.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from avp_core.context import AVPContext
from avp_core.store import ContextRef, ContextStore

METADATA_KEY = "avp"
"""The ``response_metadata`` key that holds a message's :class:`ContextHandle`."""

_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"}
_MEDIA_BLOCKS = {"image", "image_url", "audio", "input_audio", "video", "file"}


class ContextHandle(dict[str, Any]):
    """A JSON-able description of a context that also holds the live context (``.context``).

    The items are what every serializer sees; ``.context`` is carried along by shallow and
    deep copies (contexts are immutable, so copies share it) and dropped by pickling. A handle
    restored from a checkpoint may hold a loader instead (with ``.ref``, the context's
    :class:`~avp_core.store.ContextRef`): the context is then read from its store the first
    time ``.context`` is asked for, and ``None`` if that fails.
    """

    __slots__ = ("_context", "_loader", "ref")

    def __init__(
        self,
        data: dict[str, Any],
        context: AVPContext | None = None,
        *,
        loader: Callable[[], AVPContext | None] | None = None,
        ref: ContextRef | None = None,
    ) -> None:
        super().__init__(data)
        self._context = context
        self._loader = loader
        self.ref = ref

    @property
    def context(self) -> AVPContext | None:
        loader = self._loader
        if self._context is None and loader is not None:
            # two threads may both load: the store hands both the same object
            self._context = loader()
            self._loader = None
        return self._context

    @property
    def pending(self) -> bool:
        """Whether the context is still only a reference (not loaded yet)."""
        return self._context is None and self._loader is not None and self.ref is not None

    def __copy__(self) -> ContextHandle:
        return ContextHandle(self, self._context, loader=self._loader, ref=self.ref)

    def __deepcopy__(self, memo: dict[int, Any]) -> ContextHandle:
        data = copy.deepcopy(dict(self), memo)
        return ContextHandle(data, self._context, loader=self._loader, ref=self.ref)

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))


def describe(context: AVPContext) -> dict[str, Any]:
    """The compact, JSON-able description of ``context`` stored in messages."""
    summary = context.summary()
    return {key: summary[key] for key in ("model", "seq_len", "tokens", "latent_steps", "bytes")}


def handle_of(message: BaseMessage) -> dict[str, Any] | None:
    """The ``response_metadata["avp"]`` entry of ``message`` (a dict), or None."""
    entry = getattr(message, "response_metadata", None) or {}
    value = entry.get(METADATA_KEY) if isinstance(entry, dict) else None
    return value if isinstance(value, dict) and value.get("context_id") else None


def context_of(message: BaseMessage, cache: ContextStore | None = None) -> AVPContext | None:
    """The live context a message carries, else the one ``cache`` holds under its id, else None."""
    handle = handle_of(message)
    if handle is None:
        return None
    live = getattr(handle, "context", None)
    if isinstance(live, AVPContext):
        return live
    return cache.get(str(handle["context_id"])) if cache is not None else None


def attach(message: BaseMessage, context: AVPContext) -> None:
    """Make ``message`` carry ``context`` (keeps any description already there)."""
    current = handle_of(message) or {}
    data = {**current, "context_id": context.context_id, "context": describe(context)}
    message.response_metadata[METADATA_KEY] = ContextHandle(data, context)


def text_of(content: str | Sequence[Any]) -> str:
    """The text of a message's content; text blocks are joined, reasoning and tool blocks
    skipped. Media blocks raise ValueError (the connector handles text only)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            kind = block.get("type")
            if kind == "text":
                parts.append(str(block.get("text", "")))
            elif kind in _MEDIA_BLOCKS:
                raise ValueError(
                    f"AVPChatModel handles text only; the messages contain a {kind!r} block"
                )
    return "".join(parts)


def to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Chat-template turns (``role``/``content`` dicts) for LangChain messages.

    System, human, AI and tool messages map to the ``system``, ``user``, ``assistant`` and
    ``tool`` roles; an AI message's tool calls are passed as ``tool_calls`` for templates that
    render them; a :class:`ChatMessage` keeps its role.
    """
    turns: list[dict[str, Any]] = []
    for message in messages:
        turn: dict[str, Any] = {"content": text_of(message.content)}
        if isinstance(message, SystemMessage):
            turn["role"] = "system"
        elif isinstance(message, HumanMessage):
            turn["role"] = "user"
        elif isinstance(message, AIMessage):
            turn["role"] = "assistant"
            if message.tool_calls:
                turn["tool_calls"] = [
                    {
                        "type": "function",
                        "id": call.get("id"),
                        "function": {"name": call["name"], "arguments": call["args"]},
                    }
                    for call in message.tool_calls
                ]
        elif isinstance(message, ToolMessage):
            turn.update(role="tool", tool_call_id=message.tool_call_id)
        elif isinstance(message, FunctionMessage):
            turn.update(role="tool", name=message.name)
        elif isinstance(message, ChatMessage):
            turn["role"] = _ROLES.get(message.role, message.role)
        else:
            raise ValueError(f"cannot render a {type(message).__name__} as a chat turn")
        turns.append(turn)
    return turns
