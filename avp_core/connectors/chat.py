"""Chat-template rendering for the two prompt layouts (shared and handoff)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


def render_text(tokenizer: Any, messages: list[dict[str, Any]], *, generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidRequestError(
            "the tokenizer has no chat template; set tokenizer.chat_template to a Jinja template"
        )
    return str(
        tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
    )


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of already-rendered text (the template supplies any special tokens)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def render_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """The ids of a whole conversation, ending with the assistant generation prompt."""
    return encode_text(tokenizer, render_text(tokenizer, messages, generation_prompt=True))


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
