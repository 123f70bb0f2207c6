"""avp-suite adapter for CrewAI: AVPLLM and LatentCrew.

``AVPLLM`` runs a local Hugging Face model as a crewai LLM; ``LatentCrew`` is a ``Crew`` whose
tasks continue the KV-cache of the task they take context from instead of re-reading its
output as text, when both agents run the same model. See docs/crewai.md.
"""

from .crew import LatentCrew
from .llm import AVPLLM
from .run import LatentHandle, context_of, handle_of

__all__ = ["AVPLLM", "LatentCrew", "LatentHandle", "context_of", "handle_of"]
