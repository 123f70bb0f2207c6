"""Framework tests run in their own tox envs (AVP_SUITE_FRAMEWORK=<name>): there only that
framework's files are collected, and a missing framework fails instead of skipping.
Elsewhere a file whose framework is not installed is skipped."""

import importlib.util
import os
from pathlib import Path

_MODULES = {"langgraph": "langgraph", "crewai": "crewai", "autogen": "autogen_agentchat"}
_ONLY = os.environ.get("AVP_SUITE_FRAMEWORK")


def _framework(name: str) -> str | None:
    return next((fw for fw in _MODULES if name.startswith(f"test_{fw}")), None)


collect_ignore = [
    path.name
    for path in Path(__file__).parent.glob("test_*.py")
    if (fw := _framework(path.name))
    and (fw != _ONLY if _ONLY else importlib.util.find_spec(_MODULES[fw]) is None)
]
