"""avp-suite adapter for CrewAI (AVPLLM, LatentCrew).

The adapter itself lands with its own issue; this package marks the place and is import-tested
against the supported CrewAI versions.
"""

__all__: list[str] = []
