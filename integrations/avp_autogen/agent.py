"""AVPAssistantAgent: an AutoGen chat agent that continues the group's latent context."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autogen_agentchat.agents import BaseChatAgent
from autogen_agentchat.base import Response
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    MessageFactory,
    ModelClientStreamingChunkEvent,
)
from autogen_agentchat.state import BaseState
from autogen_core import CancellationToken
from autogen_core.models import RequestUsage
from pydantic import Field

from avp_core.connectors.base import Connector, Generation, GenerationOptions, Layout, Usage
from avp_core.context import AVPContext
from avp_core.reuse import SegmentReuse

from ._threads import stream_in_thread
from .messages import LatentMessage, latent_context

DEFAULT_DESCRIPTION = "An assistant that continues the group's latent context (avp-suite)."


class AVPAssistantAgentState(BaseState):
    """Saved state of an :class:`AVPAssistantAgent`: the messages it has seen and sent."""

    history: list[Mapping[str, Any]] = Field(default_factory=list)
    type: str = Field(default="AVPAssistantAgentState")


@dataclass(frozen=True)
class _Turn:
    """What one turn computes: messages, the context continued (if any), and why."""

    messages: list[dict[str, Any]]
    context: AVPContext | None
    layout: Layout
    reason: str
    anchor: str = ""
    sources: list[AVPContext] = field(default_factory=list)

    def metadata(self, usage: Usage) -> dict[str, str]:
        mode = "latent" if self.context is not None or usage.reused_tokens else "text"
        data = {
            "avp.mode": "segments" if usage.approx_reused_tokens else mode,
            "avp.reason": self.reason,
            "avp.prompt_tokens": str(usage.prompt_tokens),
            "avp.reused_tokens": str(usage.reused_tokens),
            "avp.approx_reused_tokens": str(usage.approx_reused_tokens),
            "avp.recomputed_tokens": str(usage.recomputed_tokens),
            "avp.prefilled_tokens": str(usage.prefilled_tokens),
        }
        if self.anchor:
            data["avp.continued"] = self.anchor
        return data


class AVPAssistantAgent(BaseChatAgent):
    """An assistant on an avp_core :class:`~avp_core.Connector` that answers
    with :class:`LatentMessage` s and continues compatible ones.

    On its turn it looks for the latest :class:`LatentMessage` it has seen whose context its
    model may reuse (handshake LATENT) and continues that context in the handoff layout: the
    messages that came after it, then its own system message, arrive as new turns, so all of
    the context is reused and only those turns are prefilled. Without such a message it
    renders the conversation it has seen as text (its system message first, its own
    messages as assistant turns, everyone else's as user turns).

    Args:
        name: The agent's name (a Python identifier, as AutoGen requires).
        connector: The model the agent runs on.
        system_message: Its instructions, or None.
        description: What the agent does (read by selector teams).
        max_new_tokens, temperature, top_p, stop, seed, ignore_eos: generation options
            (:class:`~avp_core.GenerationOptions`, checked here).
        stream: Yield a ``ModelClientStreamingChunkEvent`` per decoded chunk.
        segment_reuse: Opt-in approximate reuse (``True`` for the defaults). The agent then
            renders the conversation as text, its system message first, exactly as without
            avp-suite, and reuses the runs of it that the contexts of the messages it has
            seen computed under other prefixes; see :class:`~avp_core.reuse.SegmentReuse`.
    """

    def __init__(
        self,
        name: str,
        *,
        connector: Connector,
        system_message: str | None = None,
        description: str = DEFAULT_DESCRIPTION,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        ignore_eos: bool = False,
        stream: bool = True,
        segment_reuse: SegmentReuse | bool | None = None,
    ) -> None:
        super().__init__(name, description)
        self._connector = connector
        self._segments = SegmentReuse.coerce(segment_reuse)
        self._system_message = system_message
        self._stream = stream
        self._options = GenerationOptions(
            max_new_tokens, temperature, top_p, tuple(stop or ()), seed, ignore_eos
        )
        self._history: list[BaseChatMessage] = []

    @property
    def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
        return (LatentMessage,)

    @property
    def connector(self) -> Connector:
        return self._connector

    @property
    def system_message(self) -> str | None:
        return self._system_message

    @property
    def history(self) -> list[BaseChatMessage]:
        """The messages this agent has seen and sent, oldest first (a copy)."""
        return list(self._history)

    async def on_messages(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> Response:
        response = None
        async for item in self.on_messages_stream(messages, cancellation_token):
            if isinstance(item, Response):
                response = item
        assert response is not None
        return response

    async def on_messages_stream(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> AsyncGenerator[BaseAgentEvent | BaseChatMessage | Response, None]:
        """Yield token chunks as they are decoded, then the Response with a LatentMessage."""
        self._history.extend(messages)
        turn = self._plan()
        message_id = str(uuid.uuid4())
        generation: Generation | None = None

        def produce() -> Any:
            return self._connector.generate_stream(
                turn.messages,
                context=turn.context,
                layout=turn.layout,
                source_agent=self.name,
                segment_reuse=self._segments,
                sources=turn.sources,
                **self._options.to_kwargs(),
            )

        async for item in stream_in_thread(produce, cancellation_token):
            if isinstance(item, Generation):
                generation = item
            elif self._stream:
                yield ModelClientStreamingChunkEvent(
                    content=item, source=self.name, full_message_id=message_id
                )
        assert generation is not None
        usage = generation.usage
        reply = LatentMessage(
            id=message_id,
            content=generation.text,
            source=self.name,
            context=generation.context,
            models_usage=RequestUsage(usage.prompt_tokens, usage.completion_tokens),
            metadata=turn.metadata(usage),
        )
        self._history.append(reply)
        yield Response(chat_message=reply)

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        self._history.clear()

    async def save_state(self) -> Mapping[str, Any]:
        """The history as dumped messages: contexts as references to
        :attr:`LatentMessage.store` (each position stored once, however many messages and
        states refer to it)."""
        history = [m.dump() for m in self._history]
        return AVPAssistantAgentState(history=history).model_dump()

    async def load_state(self, state: Mapping[str, Any]) -> None:
        saved = AVPAssistantAgentState.model_validate(state)
        factory = MessageFactory()
        if not factory.is_registered(LatentMessage):
            factory.register(LatentMessage)
        history: list[BaseChatMessage] = []
        for data in saved.history:
            message = factory.create(data)
            if not isinstance(message, BaseChatMessage):
                raise ValueError(f"not a chat message in the saved history: {type(message)}")
            history.append(message)
        self._history = history

    # -- internals -------------------------------------------------------------------------

    def _anchor(self) -> tuple[LatentMessage | None, str]:
        """The latest LatentMessage whose context this model may reuse, or why there is none."""
        rejected = ""
        for message in reversed(self._history):
            context = latent_context(message)
            if context is None:
                continue
            handshake = self._connector.check_context(context)
            if handshake.latent:
                assert isinstance(message, LatentMessage)
                return message, handshake.reason
            rejected = rejected or f"{message.source}'s context: {handshake.reason}"
        return None, rejected or "no latent context to continue"

    def _plan(self) -> _Turn:
        system = [{"role": "system", "content": self._system_message}]
        system = system if self._system_message else []
        if self._segments is not None:
            turns = system + [self._as_turn(m) for m in self._history]
            sources = [
                context
                for m in self._history
                if (context := latent_context(m)) is not None
                and self._connector.check_context(context).latent
            ]
            reason = f"segment reuse from {len(sources)} context(s)"
            return _Turn(turns, None, "shared", reason, sources=sources)
        anchor, reason = self._anchor()
        if anchor is not None:
            index = next(i for i, m in enumerate(self._history) if m is anchor)
            turns = [self._as_turn(m) for m in self._history[index + 1 :]] + system
            if turns:
                return _Turn(turns, anchor.context, "handoff", reason, anchor.id)
            reason = "nothing new after the latest context and no system message; using text"
        turns = system + [self._as_turn(m) for m in self._history]
        return _Turn(turns, None, "shared", reason)

    def _as_turn(self, message: BaseChatMessage) -> dict[str, Any]:
        role = "assistant" if message.source == self.name else "user"
        return {"role": role, "content": message.to_model_text()}
