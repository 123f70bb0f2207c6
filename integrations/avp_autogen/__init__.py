"""avp-suite adapter for AutoGen (LatentMessage, AVPAssistantAgent, AVPChatCompletionClient).

The adapter itself lands with its own issue; this package marks the place and is import-tested
against the supported AutoGen versions.
"""

__all__: list[str] = []
