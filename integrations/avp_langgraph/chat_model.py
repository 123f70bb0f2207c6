"""AVPChatModel: a LangChain chat model on a connector that reuses KV between agents.

Each call renders the whole message list with the model's chat template, looks for context
handles on the AI messages it is given (see :mod:`avp_langgraph.messages`), checks the
handshake, and reuses the best compatible context: the longest exact token prefix (shared
layout) or the whole latest context (handoff layout). Other messages are just text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import ToolCall, invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import AliasChoices, ConfigDict, Field, PrivateAttr, field_validator

from avp_core._threads import stream_in_thread
from avp_core.connectors.base import Connector, Generation, GenerationOptions, Layout
from avp_core.context import AVPContext, common_prefix_length
from avp_core.errors import InvalidRequestError
from avp_core.handshake import Handshake
from avp_core.reuse import SegmentReuse
from avp_core.store import ContextStore, reusable_prefix

from .messages import METADATA_KEY, ContextHandle, context_of, describe, handle_of, to_chat

logger = logging.getLogger("avp_langgraph")

RECENT_BYTES = 256 << 20
"""Bytes of its own recent contexts an AVPChatModel keeps, to find them by id."""

T = TypeVar("T")


@dataclass
class _Plan:
    """What one call sends to the connector and what to report about it."""

    messages: list[dict[str, Any]]
    options: dict[str, Any]
    context: AVPContext | None
    layout: Layout
    rejected: Handshake | None  # the latest handshake that refused a handle, for reporting
    parallel_tool_calls: bool = True  # False: only the first tool call is made


class AVPChatModel(BaseChatModel):
    """A chat model on a :class:`~avp_core.Connector` that passes KV-cache between agents.

    ``latent=False`` makes it the plain text baseline on the same connector: it never passes a
    context. Every returned :class:`AIMessage` carries its context (``context_of(message)``)
    and ``response_metadata["avp"]`` reports ``mode``, ``reused_tokens``,
    ``prefilled_tokens``, ``ttft_s``, ``handshake`` and ``context_id``.
    """

    connector: Connector = Field(exclude=True)
    """The model runner; one connector can serve many chat models and threads."""
    layout: Literal["shared", "handoff"] = "shared"
    """``shared``: reuse the longest exact token prefix (output equals the text path).
    ``handoff``: continue the latest compatible context; the messages after the AI message
    that carries it are the new turns."""
    latent: bool = True
    """Reuse contexts; False is the text baseline."""
    max_new_tokens: int = Field(
        default=256, ge=1, validation_alias=AliasChoices("max_new_tokens", "max_tokens")
    )
    temperature: float = Field(default=0.0, ge=0.0)
    """0 is greedy."""
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] | None = Field(
        default=None, validation_alias=AliasChoices("stop", "stop_sequences")
    )
    seed: int | None = None
    ignore_eos: bool = False
    """Keep generating past the end-of-sequence token (fixed-length benchmark answers)."""
    source_agent: str = ""
    """Recorded in every context this model makes."""
    streaming: bool = False
    """Use the streaming path for ``invoke`` too (LangChain's standard switch)."""
    context_cache: ContextStore | None = Field(default=None, exclude=True)
    """Optional bounded cache: every new context is put there, and prompts also reuse from it
    (a warm prefix cache across graph runs; messages rebuilt without their live handle)."""
    segment_reuse: SegmentReuse | None = Field(default=None, exclude=True)
    """Opt-in approximate reuse (``True`` for the defaults): runs of the prompt that earlier
    contexts computed under another prefix (another agent's system prompt) are reused at
    their new positions; see :class:`~avp_core.reuse.SegmentReuse`. Off: exact reuse only."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _missing: set[str] = PrivateAttr(default_factory=set)
    _recent: ContextStore = PrivateAttr(
        default_factory=lambda: ContextStore(max_bytes=RECENT_BYTES)
    )
    """The contexts this model made lately, by id: a message that a checkpointer or a copy
    gave back without its KV still finds it here (no prefix lookup: that is context_cache)."""

    @field_validator("segment_reuse", mode="before")
    @classmethod
    def _coerce_segment_reuse(cls, value: Any) -> SegmentReuse | None:
        return SegmentReuse.coerce(value)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs: Any) -> AVPChatModel:
        """Load a connector (a built-in name, a checkpoint directory or a Hub id) and wrap it.

        Keyword arguments that are fields of this model configure it; the rest (``device``,
        ``dtype``, ...) go to :meth:`HuggingFaceConnector.from_pretrained`.
        """
        names = set(cls.model_fields) | {"max_tokens", "stop_sequences"}
        fields = {k: v for k, v in kwargs.items() if k in names}
        loader = {k: v for k, v in kwargs.items() if k not in names}
        from avp_core.connectors.hf import HuggingFaceConnector

        return cls(connector=HuggingFaceConnector.from_pretrained(name_or_path, **loader), **fields)

    # -- LangChain metadata ------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        identity = self.connector.identity
        return identity.model_id or identity.short()

    @property
    def _llm_type(self) -> str:
        return "avp-huggingface"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "layout": self.layout,
            "latent": self.latent,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="avp",
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_new_tokens", self.max_new_tokens),
        )
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or [])
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, Pydantic models, functions or OpenAI schemas).

        ``tool_choice``: ``"auto"`` (default), ``"any"``/``"required"``/``True`` (must call
        a tool), ``"none"``, or a tool's name. ``parallel_tool_calls=False`` keeps the first
        call; the others are reported in ``invalid_tool_calls``.
        """
        schemas = [convert_to_openai_tool(tool) for tool in tools]
        kwargs["tools"] = schemas
        kwargs["tool_choice"] = _tool_choice(tool_choice, schemas)
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(**kwargs)

    # -- sync --------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = None
        for item in self._run(messages, stop, kwargs):
            if isinstance(item, str):
                if run_manager:
                    run_manager.on_llm_new_token(item, chunk=_chunk(item))
            else:
                result = item
        assert result is not None
        return _result(self._message(_reply(*result), *result))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for item in self._run(messages, stop, kwargs):
            chunk = self._stream_chunk(item)
            if run_manager and isinstance(item, str):
                run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk

    # -- async: the connector runs in a worker thread, the event loop stays free ------------

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = None
        async for item in stream_in_thread(lambda: self._run(messages, stop, kwargs)):
            if isinstance(item, str):
                if run_manager:
                    await run_manager.on_llm_new_token(item, chunk=_chunk(item))
            else:
                result = item
        assert result is not None
        return _result(self._message(_reply(*result), *result))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for item in stream_in_thread(lambda: self._run(messages, stop, kwargs)):
            chunk = self._stream_chunk(item)
            if run_manager and isinstance(item, str):
                await run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk

    # -- internals ---------------------------------------------------------------------------

    def _run(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> Iterator[str | tuple[Generation, _Plan]]:
        """Plan the call, then yield text chunks and finally ``(generation, plan)``."""
        plan = self._plan(messages, stop, kwargs)
        plan.parallel_tool_calls = kwargs.get("parallel_tool_calls") is not False
        for item in self.connector.generate_stream(
            plan.messages, context=plan.context, layout=plan.layout, **plan.options
        ):
            if isinstance(item, str):
                yield item
            else:
                if self.context_cache is not None:
                    self.context_cache.put(item.context)
                if self.latent:
                    self._recent.put(item.context)
                yield item, plan

    def _plan(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> _Plan:
        sampling = GenerationOptions(  # per-call values (invoke kwargs) over the fields
            max_new_tokens=kwargs.get("max_new_tokens", kwargs.get("max_tokens"))
            or self.max_new_tokens,
            temperature=kwargs.get("temperature", self.temperature),
            top_p=kwargs.get("top_p", self.top_p),
            stop=tuple((stop if stop is not None else self.stop) or ()),
            seed=kwargs.get("seed", self.seed),
            ignore_eos=kwargs.get("ignore_eos", self.ignore_eos),
        )
        options: dict[str, Any] = {
            **sampling.to_kwargs(),
            "source_agent": kwargs.get("source_agent", self.source_agent),
        }
        tools = kwargs.get("tools") or None
        if tools:
            options.update(tools=tools, tool_choice=kwargs.get("tool_choice") or "auto")
        layout = kwargs.get("layout", self.layout)
        chat = to_chat(messages)
        if not self.latent:
            return _Plan(chat, options, None, "shared", None)
        compatible, rejected = [], None
        for index, context in self._candidates(messages, kwargs.get("avp_context")):
            handshake = self.connector.check_context(context)
            if handshake.latent:
                compatible.append((index, context))
            elif rejected is None:
                rejected = handshake
        if layout == "handoff" and compatible:
            index, context = compatible[0]
            # the receiver's own instructions come before the handed-off reply in its
            # messages; they cannot come first, so they are the first turns after it
            systems = [turn for turn in chat[: index + 1] if turn["role"] == "system"]
            turns = systems + chat[index + 1 :]
            if turns:
                return _Plan(turns, options, context, "handoff", rejected)
        prompt = self.connector.prompt_ids(chat, tools)
        best, best_length = None, 0
        for _, context in compatible:
            length = common_prefix_length(context.sequence, prompt)
            if length > best_length:
                best, best_length = context, length
        if self.context_cache is not None:
            cached, length = reusable_prefix(self.context_cache, self.connector, prompt)
            if length > best_length:
                best = cached
        if self.segment_reuse is not None:
            options["segment_reuse"] = self.segment_reuse
            options["sources"] = [context for _, context in compatible]
            options["source_store"] = self.context_cache
        return _Plan(chat, options, best, "shared", rejected)

    def _candidates(
        self, messages: list[BaseMessage], explicit: AVPContext | Sequence[AVPContext] | None
    ) -> list[tuple[int, AVPContext]]:
        """Contexts to consider, best first, each with the index of the AI message that holds
        it or said its text (-1 if none): contexts passed as ``avp_context``, then those the
        AI messages carry, latest first."""
        given = [explicit] if isinstance(explicit, AVPContext) else list(explicit or [])
        carried: list[tuple[int, AVPContext]] = []
        for index in range(len(messages) - 1, -1, -1):
            if not isinstance(messages[index], AIMessage):
                continue
            handle = handle_of(messages[index])
            if carried and isinstance(handle, ContextHandle) and handle.pending:
                continue  # in a store, and an earlier context than one found: not worth a read
            context = context_of(messages[index], self.context_cache)
            if context is None and handle is not None:
                context = self._recent.get(str(handle["context_id"]))
            if context is not None:
                carried.append((index, context))
            elif handle is not None:
                self._say_missing(str(handle["context_id"]))
        where = {context.context_id: index for index, context in carried}
        first = [(where.get(c.context_id, _said(messages, c)), c) for c in given]
        ids = {c.context_id for c in given}
        return first + [(i, c) for i, c in carried if c.context_id not in ids]

    def _say_missing(self, context_id: str) -> None:
        """Warn once per context that a message names a context whose KV is not here."""
        if context_id in self._missing:
            return
        self._missing.add(context_id)
        logger.warning(
            "a message carries context %s, but its KV is not in this process (the message "
            "came back from a checkpoint or a copy that keeps only its description), so its "
            "text is read again. To keep contexts, give the checkpointer "
            "serde=AVPSerializer(), or give AVPChatModel a context_cache=ContextStore()",
            context_id[:8],
        )

    def _message(
        self, message: AIMessage | AIMessageChunk, generation: Generation, plan: _Plan
    ) -> Any:
        """Fill in usage, metadata and the context handle of the reply."""
        usage = generation.usage
        handshake = generation.handshake or plan.rejected
        report = {
            "mode": _mode(plan, usage),
            "layout": plan.layout,
            "reused_tokens": usage.reused_tokens,
            "approx_reused_tokens": usage.approx_reused_tokens,
            "recomputed_tokens": usage.recomputed_tokens,
            "prefilled_tokens": usage.prefilled_tokens,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "ttft_s": round(usage.ttft_s, 6),
            "total_s": round(usage.total_s, 6),
            "handshake": handshake.reason if handshake else None,
            "notes": list(generation.notes),
            "invalid_tool_calls": [vars(call) for call in generation.invalid_tool_calls],
            "handshake_mode": handshake.mode.value if handshake else None,
            "reused_context_id": plan.context.context_id if plan.context else None,
            "context_id": generation.context.context_id,
            "context": describe(generation.context),
        }
        message.response_metadata.update(
            {
                "model_name": self.model_name,
                "finish_reason": generation.finish_reason,
                METADATA_KEY: ContextHandle(report, generation.context),
            }
        )
        message.usage_metadata = UsageMetadata(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            total_tokens=usage.prompt_tokens + usage.completion_tokens,
            input_token_details={"cache_read": usage.reused_tokens + usage.approx_reused_tokens},
        )
        return message

    def _stream_chunk(self, item: str | tuple[Generation, _Plan]) -> ChatGenerationChunk:
        if isinstance(item, str):
            return _chunk(item)
        calls = _calls(*item)
        chunks = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(calls)
        ]
        last = AIMessageChunk(content="", tool_call_chunks=chunks, chunk_position="last")
        return ChatGenerationChunk(message=self._message(last, *item))


def _tool_choice(choice: str | bool | dict[str, Any] | None, schemas: list[dict[str, Any]]) -> str:
    """LangChain's ``tool_choice`` spellings as the connector's (auto, required, none, a name)."""
    if choice is None or choice == "auto":
        return "auto"
    if choice is True:
        return schemas[0]["function"]["name"] if len(schemas) == 1 else "required"
    if choice in ("any", "required"):
        return "required"
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name") or choice.get("name")
    if choice is False or choice == "none":
        return "none"
    names = [schema["function"]["name"] for schema in schemas]
    if choice not in names:
        raise InvalidRequestError(
            f"tool_choice must be 'auto', 'any', 'required', 'none', True or a bound tool's "
            f"name {names}, got {choice!r}"
        )
    return str(choice)


def _calls(generation: Generation, plan: _Plan) -> list[ToolCall]:
    """The reply's valid tool calls as LangChain ``ToolCall`` dicts (the first only when
    parallel tool calls are off)."""
    calls = [tool_call(name=c.name, args=c.arguments, id=c.id) for c in generation.tool_calls]
    return calls if plan.parallel_tool_calls else calls[:1]


def _reply(generation: Generation, plan: _Plan) -> AIMessage:
    """The reply as an AIMessage: its text, tool calls and invalid tool calls."""
    invalid = [
        invalid_tool_call(name=c.name, args=c.arguments, id=c.id, error=c.error)
        for c in generation.invalid_tool_calls
    ]
    calls = _calls(generation, plan)
    extra = generation.tool_calls[len(calls) :]
    invalid += [
        invalid_tool_call(
            name=c.name,
            args=json.dumps(c.arguments),
            id=c.id,
            error="parallel_tool_calls=False: only the first call is made",
        )
        for c in extra
    ]
    return AIMessage(content=generation.reply, tool_calls=calls, invalid_tool_calls=invalid)


def _result(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])


def _mode(plan: _Plan, usage: Any) -> str:
    if usage.approx_reused_tokens:
        return "segments"
    return "latent" if plan.context is not None or usage.reused_tokens else "text"


def _said(messages: list[BaseMessage], context: AVPContext) -> int:
    """Index of the latest AI message whose text is the context's reply, or -1."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, AIMessage) and context.text and message.content == context.text:
            return index
    return -1


def _chunk(text: str) -> ChatGenerationChunk:
    return ChatGenerationChunk(message=AIMessageChunk(content=text))
