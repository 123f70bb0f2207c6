"""Framework tests run in their own tox envs (AVP_SUITE_FRAMEWORK=<name>): there only that
framework's files are collected, and a missing framework fails instead of skipping.
Elsewhere a file whose framework is not installed is skipped."""

import asyncio
import importlib.util
import os
import threading
from pathlib import Path

import pytest

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


class LoopGate:
    """Proves, without a clock, that a model call leaves the event loop free.

    The model's forward waits until a coroutine on the event loop opens the gate. A forward
    running on the loop's own thread would wait in vain (here: time out after 60 s), so a
    call that returns with ``gate.passed`` true ran its model off the loop while the loop
    kept running.
    """

    def __init__(self, model) -> None:
        self.opened = threading.Event()
        self.threads: list[int] = []
        self.waits: list[bool] = []
        self._handle = model.register_forward_pre_hook(self._hold)

    def _hold(self, module, args) -> None:
        self.threads.append(threading.get_ident())
        self.waits.append(self.opened.wait(timeout=60))

    async def open_after(self, started: asyncio.Future | asyncio.Task) -> None:
        """Open once the loop has run a few times with the call in flight."""
        for _ in range(3):
            await asyncio.sleep(0)
        assert not started.done(), "the call finished before the loop opened the gate"
        self.opened.set()

    def passed(self, loop_thread: int) -> bool:
        return bool(self.waits) and all(self.waits) and loop_thread not in self.threads

    def close(self) -> None:
        self._handle.remove()


@pytest.fixture
def loop_gate(request):
    """``loop_gate(connector)``: a :class:`LoopGate` on the connector's model, removed after."""
    gates: list[LoopGate] = []

    def make(connector) -> LoopGate:
        gates.append(LoopGate(connector.model))
        return gates[-1]

    yield make
    for gate in gates:
        gate.close()
