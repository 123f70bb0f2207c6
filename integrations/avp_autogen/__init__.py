"""avp-suite adapter for AutoGen: latent messages in group chats.

- :class:`LatentMessage`: a chat message with text plus an AVPContext handle; ``dump`` /
  ``load`` (and so team ``save_state`` / ``load_state``) carry a reference to the context
  in ``LatentMessage.store``.
- :class:`AVPAssistantAgent`: continues the latest compatible LatentMessage's context.
- :class:`AVPChatCompletionClient`: a ChatCompletionClient for stock ``AssistantAgent`` s
  that reuses exact prompt prefixes across calls.
- :class:`LatentMessageSerializer`, :func:`add_latent_serializers`: LatentMessages through
  the distributed gRPC runtime, the KV through a shared store.

Register the message type with a team: ``RoundRobinGroupChat(...,
custom_message_types=[LatentMessage])``.
"""

from .agent import AVPAssistantAgent, AVPAssistantAgentState
from .client import AVPChatCompletionClient
from .distributed import LatentMessageSerializer, add_latent_serializers
from .messages import LatentMessage

__all__ = [
    "AVPAssistantAgent",
    "AVPAssistantAgentState",
    "AVPChatCompletionClient",
    "LatentMessage",
    "LatentMessageSerializer",
    "add_latent_serializers",
]
