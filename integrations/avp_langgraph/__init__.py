"""avp-suite adapter for LangChain and LangGraph (AVPChatModel, latent state, checkpoints).

The adapter itself lands with its own issue; this package marks the place and is import-tested
against the supported LangGraph versions.
"""

__all__: list[str] = []
