"""Which agent frameworks the tests can run here (one mapping for demo, docs and examples)."""

from __future__ import annotations

import importlib.util
import re
from importlib import metadata
from pathlib import Path

FRAMEWORK_MODULES = {"langgraph": "langgraph", "crewai": "crewai", "autogen": "autogen_agentchat"}
"""Framework name (tox env factor, example and guide prefix) to the module its tests import."""
DISTRIBUTIONS = {"langgraph": "langgraph", "crewai": "crewai", "autogen": "autogen-agentchat"}
CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"
PINNED = dict(re.findall(r"^([\w-]+)==(\S+)$", CONSTRAINTS.read_text(), re.M))


def pinned_version(framework: str | None) -> bool:
    """Whether the framework (if any) is at the version constraints.txt pins: the version
    printed outputs in docs and examples were recorded with. Under others (the ``min`` tox
    envs) the framework's own prompts differ, so only their numbers may differ."""
    return (
        framework is None
        or metadata.version(DISTRIBUTIONS[framework]) == PINNED[DISTRIBUTIONS[framework]]
    )


def installed() -> list[str]:
    """The frameworks whose module is importable in this environment."""
    return [name for name, module in FRAMEWORK_MODULES.items() if importlib.util.find_spec(module)]
