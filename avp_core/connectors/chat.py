"""Chat-template rendering for the two prompt layouts (shared and handoff)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import tools as _tools
from ..errors import InvalidRequestError

Messages = str | Sequence[Mapping[str, Any]]

_SENTINEL = "AVPSENTINEL7f3a9c"


def normalize_messages(messages: Messages) -> list[dict[str, Any]]:
    """A list of ``{"role", "content"}`` dicts; a plain string is one user message."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    result = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise InvalidRequestError(
                f"message {index} must be a dict with 'role' and 'content', got {message!r:.80}"
            )
        result.append(dict(message))
    if not result:
        raise InvalidRequestError("messages is empty; pass at least one message")
    return result


def render_text(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    *,
    generation_prompt: bool,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The template's text for ``messages`` (and ``tools``, OpenAI-style schemas).

    Templates that ignore tools, tool calls or tool turns get the documented fallback: the
    schemas as a system turn (:func:`avp_core.tools.instructions`), calls written into the
    assistant text in the block format, results as user turns inside ``<tool_response>``.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template or not isinstance(template, str):
        raise InvalidRequestError(
            "the tokenizer has no chat template; set tokenizer.chat_template to a Jinja template"
        )
    support = _support(tokenizer, template)
    if any(m.get("tool_calls") for m in messages) and not support.calls:
        messages = [_calls_as_text(m) for m in messages]
    if any(m.get("role") == "tool" for m in messages) and not support.results:
        messages = [_result_as_user(m) for m in messages]
    options: dict[str, Any] = {}
    if tools and support.tools:
        options["tools"] = list(tools)
    elif tools:
        messages = with_instructions(messages, tools)
    return str(
        tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt, **options
        )
    )


def with_instructions(
    messages: list[dict[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``messages`` with the fallback tool instructions in the (first) system turn."""
    text = _tools.instructions(tools)
    if messages and messages[0].get("role") == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


@dataclass(frozen=True)
class _Support:
    """What a chat template renders: tool schemas, assistant tool calls, tool-result turns."""

    tools: bool
    calls: bool
    results: bool


_SUPPORT: dict[str, _Support] = {}


def _support(tokenizer: Any, template: str) -> _Support:
    """Probe the template once (per template text) with a stand-in tool, call and result."""
    if template not in _SUPPORT:

        def render(messages: list[dict[str, Any]], **options: Any) -> str:
            try:
                return str(tokenizer.apply_chat_template(messages, tokenize=False, **options))
            except Exception:  # a template that rejects the probe does not support it
                return ""

        user = {"role": "user", "content": "."}
        tool = {"type": "function", "function": {"name": "avp_probe_tool", "parameters": {}}}
        function = {"name": "avp_probe_call", "arguments": {}}
        called = {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c", "function": function}],
        }
        result = {"role": "tool", "content": "avp_probe_result", "tool_call_id": "c"}
        _SUPPORT[template] = _Support(
            "avp_probe_tool" in render([user], tools=[tool]),
            "avp_probe_call" in render([user, called]),
            "avp_probe_result" in render([user, called, result]),
        )
    return _SUPPORT[template]


def _calls_as_text(message: dict[str, Any]) -> dict[str, Any]:
    calls = message.get("tool_calls")
    if not calls:
        return message
    blocks = [_tools.format_call(c["function"]["name"], c["function"]["arguments"]) for c in calls]
    text = "\n".join(filter(None, [str(message.get("content") or ""), *blocks]))
    return {k: v for k, v in message.items() if k != "tool_calls"} | {"content": text}


def _result_as_user(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("role") != "tool":
        return message
    return {"role": "user", "content": f"<tool_response>\n{message['content']}\n</tool_response>"}


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of already-rendered text (the template supplies any special tokens)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def render_ids(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> list[int]:
    """The ids of a whole conversation, ending with the assistant generation prompt."""
    text = render_text(tokenizer, messages, generation_prompt=True, tools=tools)
    return encode_text(tokenizer, text)


def continuation_ids(
    tokenizer: Any, messages: list[dict[str, Any]], tail: Sequence[int]
) -> list[int]:
    """Ids that close an open assistant turn and add ``messages`` as the next turns.

    The template renders a stand-in conversation ending with an assistant turn, then the
    same conversation plus ``messages``; what follows the stand-in reply is the closing of
    that turn plus the new turns and the generation prompt. Ids that ``tail`` (the end of
    the context being continued) already holds, such as an end-of-turn token, are dropped.
    """
    stand_in = [{"role": "user", "content": "."}, {"role": "assistant", "content": _SENTINEL}]
    try:
        text = render_text(tokenizer, stand_in + messages, generation_prompt=True)
    except InvalidRequestError:
        raise
    except Exception:  # templates that only allow a system turn first: send it as user
        demoted = [{**m, "role": "user"} if m["role"] == "system" else m for m in messages]
        text = render_text(tokenizer, stand_in + demoted, generation_prompt=True)
    ids = encode_text(tokenizer, text[text.index(_SENTINEL) + len(_SENTINEL) :])
    for overlap in range(min(len(ids), len(tail)), 0, -1):
        if list(tail[-overlap:]) == ids[:overlap]:
            return ids[overlap:]
    return ids
