"""avp-suite adapter for LangChain and LangGraph.

- :class:`AVPChatModel`: a drop-in LangChain chat model on a ``HuggingFaceConnector`` that
  hands the next agent its KV-cache (shared or handoff layout) and falls back to text.
- :func:`context_of`: the :class:`~avp_core.AVPContext` an AI message carries.
- :class:`AVPMessagesState`, :func:`merge_contexts`: a LangGraph state channel for contexts.
- :class:`AVPSerializer`: a checkpoint serializer that keeps contexts by reference to a
  context store; :func:`collect_garbage` frees those no checkpoint refers to any more.
"""

from .chat_model import AVPChatModel
from .messages import ContextHandle, context_of, to_chat
from .retention import collect_garbage, live_references
from .serializer import AVPSerializer
from .state import AVPMessagesState, merge_contexts

__all__ = [
    "AVPChatModel",
    "AVPMessagesState",
    "AVPSerializer",
    "ContextHandle",
    "collect_garbage",
    "context_of",
    "live_references",
    "merge_contexts",
    "to_chat",
]
