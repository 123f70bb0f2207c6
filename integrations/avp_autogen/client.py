"""AVPChatCompletionClient: an AutoGen ChatCompletionClient on an avp_core connector.

For stock ``AssistantAgent`` s (and selector teams). Each call renders the LLMMessages with
the model's chat template and, with ``latent=True``, reuses the KV of the stored context that
shares the longest exact token prefix with the new prompt (the shared layout: output equals
the text path). ``latent=False`` is the plain text baseline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal

from autogen_core import EVENT_LOGGER_NAME, CancellationToken, FunctionCall
from autogen_core.logging import LLMCallEvent
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelCapabilities,
    ModelFamily,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from avp_core.connectors.base import Connector, Generation, GenerationOptions, Usage
from avp_core.errors import InvalidRequestError
from avp_core.reuse import SegmentReuse
from avp_core.store import ContextStore, reusable_prefix
from avp_core.tools import InvalidToolCall

from ._threads import stream_in_thread

event_logger = logging.getLogger(EVENT_LOGGER_NAME)


class AVPChatCompletionClient(ChatCompletionClient):
    """A ChatCompletionClient that runs a local Hugging Face model and reuses exact prefixes.

    Args:
        connector: The model.
        latent: Reuse KV from earlier calls (True) or always prefill the whole prompt (False).
        store: Where contexts are kept between calls (default: a 256 MiB ``ContextStore``).
        max_new_tokens, temperature, top_p, stop, seed, ignore_eos: default generation
            options (:class:`~avp_core.GenerationOptions`, checked here);
            ``extra_create_args`` of a call may override any of them.
        family: ``model_info["family"]``.
        segment_reuse: opt-in approximate reuse (``True`` for the defaults): runs of the
            prompt that stored contexts computed under another prefix (another agent's
            ``system_message``) are reused at their new positions; see
            :class:`~avp_core.reuse.SegmentReuse`. Off: exact prefix reuse only.

    Tools (``AssistantAgent(tools=...)``, Swarm handoffs) are rendered by the chat template and
    the model's ``<tool_call>`` blocks come back as ``FunctionCall`` s; a block that does not
    parse comes back as a call the agent answers with an error result, so the model can
    retry. ``json_output`` (JSON mode, or a Pydantic type for ``output_content_type``) adds
    an instruction turn with the schema. No vision.
    """

    def __init__(
        self,
        connector: Connector,
        *,
        latent: bool = True,
        store: ContextStore | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        ignore_eos: bool = False,
        family: str = ModelFamily.UNKNOWN,
        segment_reuse: SegmentReuse | bool | None = None,
    ) -> None:
        self._connector = connector
        self._latent = latent
        self._segments = SegmentReuse.coerce(segment_reuse)
        self._store = store if store is not None else ContextStore(max_bytes=256 << 20)
        self._options = GenerationOptions(
            max_new_tokens, temperature, top_p, tuple(stop or ()), seed, ignore_eos
        )
        self._model_info: ModelInfo = {
            "vision": False,
            "function_calling": True,
            "json_output": True,
            "family": family,
            "structured_output": True,
            "multiple_system_messages": True,
        }
        self._actual = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._total = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self.last_usage: Usage | None = None
        """avp-suite usage of the last call (reused and prefilled tokens, timings)."""

    @property
    def connector(self) -> Connector:
        return self._connector

    @property
    def latent(self) -> bool:
        return self._latent

    @property
    def store(self) -> ContextStore:
        return self._store

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        """One completion, computed in a worker thread (the event loop never blocks)."""
        result = None
        async for item in self.create_stream(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            json_output=json_output,
            extra_create_args=extra_create_args,
            cancellation_token=cancellation_token,
        ):
            if isinstance(item, CreateResult):
                result = item
        assert result is not None
        return result

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """Text chunks as tokens are decoded, then the :class:`CreateResult`."""
        try:
            options = self._options.updated(**extra_create_args).to_kwargs()
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"extra_create_args: {exc}") from None
        schemas = [_openai_tool(tool) for tool in tools]
        if schemas:
            choice = tool_choice.schema["name"] if isinstance(tool_choice, Tool) else tool_choice
            options.update(tools=schemas, tool_choice=choice)
        chat = to_chat(messages) + _json_instruction(json_output)

        def produce() -> Any:  # in the worker thread: rendering and lookup too
            context = None
            if self._latent:
                ids = self._connector.prompt_ids(chat, schemas)
                context, _ = reusable_prefix(self._store, self._connector, ids)
            return self._connector.generate_stream(
                chat,
                context=context,
                segment_reuse=self._segments if self._latent else None,
                source_store=self._store,
                **options,
            )

        generation: Generation | None = None
        async for item in stream_in_thread(produce, cancellation_token):
            if isinstance(item, Generation):
                generation = item
            else:
                yield item
        assert generation is not None
        if self._latent:
            self._store.put(generation.context)
        usage = RequestUsage(
            prompt_tokens=generation.usage.prompt_tokens,
            completion_tokens=generation.usage.completion_tokens,
        )
        self.last_usage = generation.usage
        self._actual = _add(self._actual, usage)
        self._total = _add(self._total, usage)
        _log_call(chat, generation)
        calls = _function_calls(generation)
        yield CreateResult(
            finish_reason="function_calls"
            if calls
            else "stop"
            if generation.finish_reason == "stop"
            else "length",
            content=calls or generation.reply,
            usage=usage,
            cached=False,
            thought=(generation.reply or None) if calls else None,
        )

    async def close(self) -> None:
        """Drop the stored contexts."""
        self._store.clear()

    def actual_usage(self) -> RequestUsage:
        return self._actual

    def total_usage(self) -> RequestUsage:
        return self._total

    def count_tokens(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
    ) -> int:
        """Tokens of the rendered prompt (with ``tools``), generation prompt included."""
        schemas = [_openai_tool(tool) for tool in tools]
        return self._connector.count_tokens(to_chat(messages), schemas)

    def remaining_tokens(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
    ) -> int:
        """The model's context window less :meth:`count_tokens`."""
        return self._connector.context_window - self.count_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:
        return {"vision": False, "function_calling": True, "json_output": True}

    @property
    def model_info(self) -> ModelInfo:
        return self._model_info


def to_chat(messages: Sequence[LLMMessage]) -> list[dict[str, Any]]:
    """LLMMessages as chat-template dicts (``{"role", "content", ...}``)."""
    chat: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            chat.append({"role": "system", "content": message.content})
        elif isinstance(message, UserMessage):
            chat.append({"role": "user", "content": _text(message.content)})
        elif isinstance(message, AssistantMessage):
            if isinstance(message.content, str):
                chat.append({"role": "assistant", "content": message.content})
            else:
                calls = [_tool_call(call) for call in message.content]
                thought = getattr(message, "thought", None) or ""
                chat.append({"role": "assistant", "content": thought, "tool_calls": calls})
        elif isinstance(message, FunctionExecutionResultMessage):
            chat += [
                {"role": "tool", "content": r.content, "name": r.name, "tool_call_id": r.call_id}
                for r in message.content
            ]
        else:
            raise ValueError(f"unsupported message type {type(message).__name__}")
    return chat


def _openai_tool(tool: Tool | ToolSchema) -> dict[str, Any]:
    schema = tool.schema if isinstance(tool, Tool) else tool
    function = {k: v for k, v in dict(schema).items() if k in ("name", "description", "parameters")}
    return {"type": "function", "function": function}


def _json_instruction(json_output: bool | type[BaseModel] | None) -> list[dict[str, Any]]:
    """The turn that asks for JSON (JSON mode) or for an object of ``json_output``'s schema."""
    if not json_output:
        return []
    if isinstance(json_output, type) and issubclass(json_output, BaseModel):
        schema = json.dumps(json_output.model_json_schema(), ensure_ascii=False)
        text = f"Reply with only a JSON object that matches this JSON schema:\n{schema}"
    else:
        text = "Reply with only a JSON object."
    return [{"role": "system", "content": text}]


def _function_calls(generation: Generation) -> list[FunctionCall]:
    """The reply's tool calls; blocks that did not parse too, so that the agent answers them
    with an error result the model can retry on (bad JSON, unknown tool, wrong arguments)."""
    calls = [
        FunctionCall(id=c.id, name=c.name, arguments=json.dumps(c.arguments, ensure_ascii=False))
        for c in generation.tool_calls
    ]
    return calls + [
        FunctionCall(id=c.id, name=c.name or "", arguments=_invalid_arguments(c))
        for c in generation.invalid_tool_calls
    ]


def _invalid_arguments(call: InvalidToolCall) -> str:
    """Arguments AutoGen answers with an error result: as written, unless they are JSON but
    not an object (a handoff tool would raise on those outside AutoGen's error handling)."""
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return call.arguments
    return call.arguments if isinstance(value, dict) else f"invalid call: {call.error}"


def _log_call(chat: list[dict[str, Any]], generation: Generation) -> None:
    """AutoGen's LLMCallEvent (what its tracing and dashboards read), with the AVP usage."""
    usage = generation.usage
    event_logger.info(
        LLMCallEvent(
            messages=chat,
            response={"content": generation.text, "finish_reason": generation.finish_reason},
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            reused_tokens=usage.reused_tokens,
            approx_reused_tokens=usage.approx_reused_tokens,
            prefilled_tokens=usage.prefilled_tokens,
            ttft_s=round(usage.ttft_s, 6),
        )
    )


def _text(content: str | list[Any]) -> str:
    if isinstance(content, str):
        return content
    if any(not isinstance(part, str) for part in content):
        raise ValueError("AVPChatCompletionClient has no vision: images cannot be sent")
    return "\n".join(content)


def _tool_call(call: FunctionCall) -> dict[str, Any]:
    try:
        arguments: Any = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _add(a: RequestUsage, b: RequestUsage) -> RequestUsage:
    return RequestUsage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
    )
