"""Make a connector write given replies: tests of tool loops with models that never call tools.

The model still runs (prefill, KV reuse, decoding); only the choice of each next token is
forced, through the connector's ``logits_processor``. So the framework's real loop, the chat
template, the tool-call parser and the KV reuse are all exercised::

    with scripted(connector, ['<tool_call>\\n{"name": "add", "arguments": {"a": 1}}\\n</tool_call>',
                              "The sum is 1."]) as script:
        agent.invoke({"messages": [("user", "add 1")]})
    assert script.used == 2
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .connectors import chat
from .errors import InvalidRequestError
from .tools import OPEN

Replies = Sequence[str] | Callable[[str], str | None]
"""A reply per call in order, or a function of the rendered prompt (None: the model chooses)."""


class Script:
    """The replies a connector is made to write, and what it was asked."""

    def __init__(self, tokenizer: Any, replies: Replies, eos: int) -> None:
        self._tokenizer = tokenizer
        self._replies = replies
        self._eos = eos
        self._lock = threading.Lock()
        self._targets: dict[int, list[int] | None] = {}
        self.prompts: list[str] = []
        """Every prompt the connector rendered while scripted, special tokens included."""
        self.used = 0
        """How many calls got a scripted reply."""

    def process(self, prompt: Sequence[int], produced: Sequence[int], logits: Any) -> Any:
        with self._lock:
            if not produced:
                self._targets[id(prompt)] = self._next(prompt)
            target = self._targets.get(id(prompt))
        step = len(produced)
        if target is None or step >= len(target):
            return logits
        forced = logits.new_full(logits.shape, float("-inf"))
        forced[target[step]] = 0.0
        return forced

    def _next(self, prompt: Sequence[int]) -> list[int] | None:
        text = self._tokenizer.decode(list(prompt), skip_special_tokens=False)
        self.prompts.append(text)
        if callable(self._replies):
            reply = self._replies(text)
        else:
            reply = self._replies[self.used] if self.used < len(self._replies) else None
        if reply is None:
            return None
        self.used += 1
        return [*chat.encode_text(self._tokenizer, _after_opening(text, reply)), self._eos]


def _after_opening(prompt: str, reply: str) -> str:
    """The part of ``reply`` still to write when the prompt already opens it (``tool_choice``
    made the reply start with a tool call's opening)."""
    for size in range(len(reply), len(OPEN) - 1, -1):
        if prompt.endswith(reply[:size]):
            return reply[size:]
    return reply


@contextmanager
def scripted(connector: Any, replies: Replies) -> Iterator[Script]:
    """Within the block, ``connector`` (a HuggingFaceConnector) writes ``replies``."""
    if not hasattr(connector, "logits_processor"):
        raise InvalidRequestError(
            f"{type(connector).__name__} has no logits_processor; scripted() needs one"
        )
    eos = getattr(connector.tokenizer, "eos_token_id", None)
    if not isinstance(eos, int):
        raise InvalidRequestError("the tokenizer has no eos_token_id to end a scripted reply")
    script = Script(connector.tokenizer, replies, eos)
    previous = connector.logits_processor
    connector.logits_processor = script.process
    try:
        yield script
    finally:
        connector.logits_processor = previous
