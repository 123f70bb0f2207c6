"""LangGraph state with a channel for contexts, so custom graphs can pass them explicitly.

Messages from :class:`~avp_langgraph.AVPChatModel` already carry their contexts; the
``contexts`` channel is for what messages do not hold: the latest context of each agent when
the messages are trimmed, rewritten or kept per agent, or a context that has no message
(for example one made by ``HuggingFaceConnector.think``).
"""

from __future__ import annotations

from typing import Annotated

from langgraph.graph import MessagesState

from avp_core.context import AVPContext


def merge_contexts(
    left: dict[str, AVPContext] | None, right: dict[str, AVPContext | None] | None
) -> dict[str, AVPContext]:
    """Reducer of the ``contexts`` channel: the latest context per agent name.

    An update replaces the entries it names; a ``None`` value removes that agent's entry.
    """
    merged = dict(left or {})
    for name, context in (right or {}).items():
        if context is None:
            merged.pop(name, None)
        elif isinstance(context, AVPContext):
            merged[name] = context
        else:
            raise TypeError(
                f"contexts[{name!r}] must be an AVPContext or None, got {type(context).__name__}"
            )
    return merged


class AVPMessagesState(MessagesState):
    """``MessagesState`` plus ``contexts``: the latest :class:`AVPContext` per agent name."""

    contexts: Annotated[dict[str, AVPContext], merge_contexts]
