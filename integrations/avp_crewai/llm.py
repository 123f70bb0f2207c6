"""AVPLLM: a crewai ``BaseLLM`` that runs a model through an avp_core connector.

One call renders crewai's messages with the model's chat template and generates with an
avp_core :class:`~avp_core.Connector` (such as ``HuggingFaceConnector``). Inside a
:class:`~avp_crewai.LatentCrew` kickoff, a call made for a task that the crew planned as a
continuation reuses the planned :class:`~avp_core.AVPContext` in the handoff layout (see
:mod:`avp_crewai.run`); every call made for a task records the context it produced so the
task's output can carry it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import crewai.llms.base_llm as _base_llm
import crewai.utilities.agent_utils as _agent_utils
from crewai.events.types.llm_events import LLMCallType
from crewai.llms.base_llm import BaseLLM
from crewai.utilities.exceptions.context_window_exceeding_exception import (
    LLMContextLengthExceededError,
)

from avp_core import AVPContext, ContextStore, InvalidRequestError
from avp_core.connectors.base import Connector, Generation, GenerationOptions
from avp_core.reuse import SegmentReuse
from avp_core.store import reusable_prefix
from avp_core.tools import normalize_tools

from . import run as _run

if TYPE_CHECKING:
    from crewai.utilities.types import LLMMessage

    Messages = str | list[LLMMessage]

logger = logging.getLogger("avp_crewai")

CONTEXT_WINDOW_USAGE_RATIO = 0.85
"""Share of the model's window reported to crewai, as crewai's own ``LLM`` reports it."""

# newer crewai scopes each call (its events carry the call's id); crewai 1.0 has no scope
_llm_call_context: Callable[[], AbstractContextManager[Any]] = getattr(
    _base_llm, "llm_call_context", nullcontext
)


NATIVE_TOOLS = hasattr(_agent_utils, "check_native_tool_support")
"""Whether this crewai drives native tool calls (its executor runs the calls an LLM returns)."""

_TURN_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")


def _json_instruction(response_model: Any | None) -> list[dict[str, Any]]:
    """The turn asking for an object of ``response_model``'s JSON schema (crewai's
    structured output), or nothing."""
    schema = getattr(response_model, "model_json_schema", None)
    if not callable(schema):
        return []
    text = json.dumps(schema(), ensure_ascii=False)
    return [{"role": "system", "content": f"Reply with only a JSON object of this schema:\n{text}"}]


def _openai_calls(generation: Generation) -> list[dict[str, Any]]:
    """The reply's tool calls in OpenAI form; calls that did not parse too (with their
    arguments as written), so crewai answers them with an error the agent can retry on."""
    calls = [
        (c.id, c.name, json.dumps(c.arguments, ensure_ascii=False)) for c in generation.tool_calls
    ]
    calls += [(c.id, c.name or "", c.arguments) for c in generation.invalid_tool_calls]
    return [
        {"id": ident, "type": "function", "function": {"name": name, "arguments": arguments}}
        for ident, name, arguments in calls
    ]


def _run_first(generation: Generation, functions: dict[str, Any], fallback: str) -> str:
    """Run the first valid call with ``available_functions`` (as crewai's own LLM does) and
    return its result; the reply's text when there is none or it fails."""
    for call in generation.tool_calls:
        function = functions.get(call.name)
        if function is not None:
            try:
                return str(function(**call.arguments))
            except Exception as exc:  # crewai's LLM falls back to the text too
                logger.warning("tool %s failed: %s; returning the reply's text", call.name, exc)
                return fallback
    return fallback


def _said(turn: dict[str, Any], context: AVPContext) -> bool:
    """Whether ``turn`` is the assistant turn ``context`` produced, unchanged (crewai's
    ReAct loop appends an observation to it; then it is not)."""
    if turn.get("role") != "assistant":
        return False
    return bool(turn.get("tool_calls")) or (turn.get("content") or "") == (context.text or "")


def _accepted(method: Callable[..., Any], **options: Any) -> dict[str, Any]:
    """The keyword arguments ``method`` accepts (event helpers grew parameters over versions)."""
    names = inspect.signature(method).parameters
    return {k: v for k, v in options.items() if k in names and v is not None}


class _Shared:
    """Holds the connector and context cache: copies of an AVPLLM (even deep ones) share them."""

    __slots__ = ("cache", "connector")

    def __init__(self, connector: Connector, cache: ContextStore | None) -> None:
        self.connector = connector
        self.cache = cache

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


class AVPLLM(BaseLLM):
    """A crewai LLM backed by a local Hugging Face model, with latent handoff in a LatentCrew.

    ``latent=False`` makes it a plain text LLM (the baseline): it never continues a context.
    ``context_cache`` (latent only; default: a 256 MiB :class:`~avp_core.ContextStore`, False
    or None for none): every call stores its context there and reuses the one sharing the
    longest exact token prefix with its prompt (the shared layout: the output equals the text
    path), so a task's tool loop, repeated kickoffs and ``kickoff_for_each`` over inputs that
    share a prefix prefill only what is new.

    ``function_calling`` (default: on where crewai drives native tool calls, crewai >= 1.x's
    ``AgentExecutor``): agents with tools get the tool schemas through the chat template and
    this LLM returns the model's calls for crewai to run; a call that does not parse comes
    back for crewai to answer with an error the agent can retry on. Off: crewai's ReAct
    text format.
    """

    def __init__(
        self,
        connector: Connector,
        *,
        latent: bool = True,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: list[str] | None = None,
        ignore_eos: bool = False,
        context_cache: ContextStore | bool | None = True,
        segment_reuse: SegmentReuse | bool | None = None,
        function_calling: bool | None = None,
        model: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(connector, Connector):
            raise InvalidRequestError(
                "connector must be an avp_core Connector (such as HuggingFaceConnector), got "
                f"{type(connector).__name__}; use AVPLLM.from_pretrained(name_or_path) to load one"
            )
        options = GenerationOptions(max_new_tokens, temperature, top_p, (), seed, ignore_eos)
        super().__init__(
            model=model or f"avp/{connector.identity.model_id or connector.identity.short()}",
            temperature=temperature,
            stop=list(stop or []),
            provider="avp",
            **kwargs,
        )
        self.top_p = top_p
        self.seed = seed
        self._segments = SegmentReuse.coerce(segment_reuse)
        if context_cache is True or (self._segments is not None and not context_cache):
            context_cache = ContextStore(max_bytes=256 << 20)
        cache = context_cache if isinstance(context_cache, ContextStore) else None
        self._shared = _Shared(connector, cache)
        self._function_calling = NATIVE_TOOLS if function_calling is None else function_calling
        self._latent = bool(latent)
        self._options = options  # temperature and stop: crewai's fields, read per call

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str = "cpu",
        dtype: Any = None,
        **options: Any,
    ) -> AVPLLM:
        """Load a model (directory, Hub id available offline, or built-in name) and wrap it.

        A name or path that cannot be loaded raises :class:`avp_core.ModelNotFoundError` here,
        before any crew is built. ``options`` go to :class:`AVPLLM`.
        """
        from avp_core.connectors.hf import HuggingFaceConnector

        connector = HuggingFaceConnector.from_pretrained(name_or_path, device=device, dtype=dtype)
        return cls(connector, **options)

    # -- configuration ---------------------------------------------------------------------

    @property
    def connector(self) -> Connector:
        return self._shared.connector

    @property
    def latent(self) -> bool:
        """Whether this LLM continues contexts a LatentCrew hands it (False: text baseline)."""
        return self._latent

    @property
    def max_new_tokens(self) -> int:
        return self._options.max_new_tokens

    def supports_stop_words(self) -> bool:
        return True

    def supports_function_calling(self) -> bool:
        """Whether crewai sends tool schemas and runs the calls this LLM returns (see the
        class's ``function_calling``); False: crewai's text (ReAct) format."""
        return self._function_calling

    def get_context_window_size(self) -> int:
        """85% of the model's ``max_position_embeddings``, the share crewai's ``LLM`` reports."""
        return int(self.connector.context_window * CONTEXT_WINDOW_USAGE_RATIO)

    def get_input_tokens_count(self, messages: Messages, *args: Any, **kwargs: Any) -> int:
        """Exact token count of the rendered messages (crewai's context-window preflight)."""
        return self.connector.count_tokens(self._messages(messages))

    def can_continue(self, context: AVPContext) -> bool:
        """Whether this LLM would continue ``context``: latent mode, a LATENT handshake, and
        room for a new turn and the answer (within :meth:`get_context_window_size`)."""
        if not self._latent or not self.connector.check_context(context).latent:
            return False
        window = self.connector.context_window
        return (
            not window
            or context.seq_len + self._options.max_new_tokens <= self.get_context_window_size()
        )

    # -- calls -----------------------------------------------------------------------------

    def call(
        self,
        messages: Messages,
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any | None = None,
        from_agent: Any | None = None,
        response_model: Any | None = None,
        **kwargs: Any,
    ) -> str | list[dict[str, Any]]:
        """Reply to crewai's messages: the text, or (given ``tools``) the model's tool calls in
        OpenAI form for crewai to run, or with ``available_functions`` the first call's result."""
        with _llm_call_context():
            return self._call(
                messages,
                tools,
                callbacks,
                available_functions,
                from_task,
                from_agent,
                response_model,
            )

    async def acall(
        self,
        messages: Messages,
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any | None = None,
        from_agent: Any | None = None,
        response_model: Any | None = None,
        **kwargs: Any,
    ) -> str | list[dict[str, Any]]:
        """:meth:`call` in a worker thread, so the event loop keeps running while it generates."""
        return await asyncio.to_thread(  # to_thread copies contextvars (the kickoff run)
            self.call,
            messages,
            tools,
            callbacks,
            available_functions,
            from_task,
            from_agent,
            response_model,
        )

    def _call(
        self,
        messages: Messages,
        tools: list[dict[str, Any]] | None,
        callbacks: list[Any] | None,
        available_functions: dict[str, Any] | None,
        from_task: Any | None,
        from_agent: Any | None,
        response_model: Any | None = None,
    ) -> str | list[dict[str, Any]]:
        self._emit_call_started_event(
            **_accepted(
                self._emit_call_started_event,
                messages=messages,
                tools=tools,
                callbacks=callbacks,
                available_functions=available_functions,
                from_task=from_task,
                from_agent=from_agent,
                max_tokens=self._options.max_new_tokens,
            )
        )
        try:
            schemas = normalize_tools(tools)
            chat = self._messages(messages) + _json_instruction(response_model)
            if hasattr(self, "_invoke_before_llm_call_hooks"):  # crewai 1.15
                self._invoke_before_llm_call_hooks(cast("list[LLMMessage]", chat), from_agent)
            run = _run.current_run()
            task_key = _run.task_key(from_task)
            handoff, turns = self._plan_handoff(run, task_key, chat)
            self._check_window(turns, handoff)
            cache = self._shared.cache if self._latent else None
            prefix = None
            if cache is not None and handoff is None:
                ids = self.connector.prompt_ids(chat, schemas)
                prefix, _ = reusable_prefix(cache, self.connector, ids)
            generation = self._generate(turns, handoff, prefix, schemas, from_task, from_agent)
            if cache is not None:
                cache.put(generation.context)
            result: str | list[dict[str, Any]] = generation.reply
            calls = _openai_calls(generation)
            if calls and available_functions:
                result = _run_first(generation, available_functions, generation.reply)
            elif calls:
                result = calls
            elif hasattr(self, "_invoke_after_llm_call_hooks"):
                result = self._invoke_after_llm_call_hooks(
                    cast("list[LLMMessage]", chat), generation.reply, from_agent
                )
        except Exception as exc:
            self._emit_call_failed_event(
                **_accepted(
                    self._emit_call_failed_event,
                    error=f"{type(exc).__name__}: {exc}",
                    from_task=from_task,
                    from_agent=from_agent,
                )
            )
            raise
        if run is not None and task_key is not None:
            run.record(task_key, generation.context, continued=handoff)
            run.remember_call(task_key, self, chat, generation.context)
        usage = generation.usage
        crewai_usage = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "cached_prompt_tokens": usage.reused_tokens + usage.approx_reused_tokens,
        }
        self._track_token_usage_internal(crewai_usage)
        self._emit_call_completed_event(
            **_accepted(
                self._emit_call_completed_event,
                response=result,
                call_type=LLMCallType.TOOL_CALL if calls else LLMCallType.LLM_CALL,
                from_task=from_task,
                from_agent=from_agent,
                messages=chat,
                usage=crewai_usage,
                finish_reason=generation.finish_reason,
            )
        )
        return result

    def _plan_handoff(
        self, run: _run.KickoffRun | None, task_key: str | None, chat: list[dict[str, Any]]
    ) -> tuple[AVPContext | None, list[dict[str, Any]]]:
        """The context to continue in the handoff layout and the turns after it, or
        ``(None, chat)`` for the shared layout.

        A task the crew planned as a continuation continues its planned context; its later
        calls (a tool loop) continue the task's previous call and send only the new turns.
        In a hierarchical crew, a delegated task continues the latest worker's context.
        """
        if run is None or task_key is None or not self._latent or self._segments is not None:
            return None, chat
        planned = run.continuation(task_key, self)
        if planned is None and run.delegated(task_key):
            worker = run.latest_worker_context(self.can_continue)
            if worker is not None:
                run.plan(task_key, worker, self)
                planned = run.continuation(task_key, self)
        if planned is None:
            return None, chat
        previous = run.last_call(task_key, self)
        if previous is not None:
            earlier, context = previous
            size = len(earlier)
            if chat[:size] == earlier and len(chat) > size + 1 and _said(chat[size], context):
                return context, chat[size + 1 :]
        return planned, chat

    def _messages(self, messages: Messages) -> list[dict[str, Any]]:
        """crewai's messages as chat-template turns (tool calls and tool results kept)."""
        turns = []
        for message in self._format_messages(messages):
            turn = {k: v for k, v in message.items() if k in _TURN_KEYS and v is not None}
            turns.append({**turn, "content": message.get("content") or ""})
        return turns

    def _stops(self) -> list[str]:
        stops = getattr(self, "stop_sequences", None)  # crewai >= 1.x: per-call override
        return list(stops if stops is not None else self.stop or [])

    def _streaming(self) -> bool:
        effective = getattr(self, "_effective_stream", None)
        return bool(effective() if callable(effective) else getattr(self, "stream", False))

    def _check_window(self, turns: list[dict[str, Any]], handoff: AVPContext | None) -> None:
        """Raise crewai's context-length error (crewai then summarises or stops) up front."""
        window = self.connector.context_window
        if not window:
            return
        prompt = self.connector.count_tokens(turns) + (handoff.seq_len if handoff else 0)
        if prompt + self._options.max_new_tokens > window:
            raise LLMContextLengthExceededError(
                f"maximum context length exceeded: the prompt has {prompt} tokens and "
                f"max_new_tokens is {self._options.max_new_tokens}, but {self.model} has a "
                f"{window}-token window"
            )

    def _generate(
        self,
        chat: list[dict[str, Any]],
        handoff: AVPContext | None,
        prefix: AVPContext | None,
        tools: list[dict[str, Any]],
        from_task: Any | None,
        from_agent: Any | None,
    ) -> Generation:
        stream: Iterator[str | Generation] = self.connector.generate_stream(
            chat,
            context=handoff or prefix,
            layout="handoff" if handoff is not None else "shared",
            **self._options.updated(
                temperature=self.temperature or 0.0,
                top_p=self.top_p if self.top_p is not None else 1.0,
                seed=self.seed,
                stop=tuple(self._stops() or ()),
            ).to_kwargs(),
            source_agent=str(getattr(from_agent, "role", "") or ""),
            segment_reuse=self._segments if self._latent else None,
            source_store=self._shared.cache,
            tools=tools or None,
        )
        streaming = self._streaming()
        for item in stream:
            if isinstance(item, Generation):
                return item
            if streaming:
                self._emit_stream_chunk_event(
                    **_accepted(
                        self._emit_stream_chunk_event,
                        chunk=item,
                        from_task=from_task,
                        from_agent=from_agent,
                        call_type=LLMCallType.LLM_CALL,
                    )
                )
        raise AssertionError("generate_stream ended without a Generation")  # pragma: no cover

    def __repr__(self) -> str:
        mode = "latent" if self._latent else "text"
        model = self.connector.identity.short()
        return f"AVPLLM({model}, {mode}, max_new_tokens={self._options.max_new_tokens})"
