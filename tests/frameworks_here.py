"""Which agent frameworks the tests can run here (one mapping for demo, docs and examples)."""

from __future__ import annotations

import importlib.util

FRAMEWORK_MODULES = {"langgraph": "langgraph", "crewai": "crewai", "autogen": "autogen_agentchat"}
"""Framework name (tox env factor, example and guide prefix) to the module its tests import."""


def installed() -> list[str]:
    """The frameworks whose module is importable in this environment."""
    return [name for name, module in FRAMEWORK_MODULES.items() if importlib.util.find_spec(module)]
