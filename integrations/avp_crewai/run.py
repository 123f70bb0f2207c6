"""One kickoff's latent state: the contexts its tasks produced and the continuations it planned.

A :class:`KickoffRun` is created by each :class:`~avp_crewai.LatentCrew` kickoff and made
current with a context variable, which crewai carries into the threads and asyncio tasks that
run the kickoff's LLM calls. Nothing is global: two kickoffs running at once each see only
their own run, and a handle records the run that made it, so a later kickoff never continues it.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from avp_core import AVPContext

_CURRENT: contextvars.ContextVar[KickoffRun | None] = contextvars.ContextVar(
    "avp_crewai_kickoff_run", default=None
)

HANDLE_ATTRIBUTE = "_avp_handle"
"""Where a TaskOutput carries its handle: an underscore attribute, which pydantic keeps out of
``model_dump`` / ``model_dump_json`` (so crewai's JSON logging never sees tensors)."""


@dataclass(frozen=True, eq=False)
class LatentHandle:
    """What a task output carries: the context its agent ended with, and the kickoff it is for.

    Immutable; copying a TaskOutput (``model_copy``, ``deepcopy``) shares the handle.
    """

    context: AVPContext
    run_id: str
    task_key: str
    parent_id: str | None = None
    """``context_id`` of the context this one continued (None: computed from text)."""

    def summary(self) -> dict[str, Any]:
        """JSON-able description (no tensors)."""
        return {**self.context.summary(), "run_id": self.run_id, "parent_id": self.parent_id}

    def __copy__(self) -> LatentHandle:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> LatentHandle:
        return self

    def __repr__(self) -> str:
        return f"LatentHandle({self.context!r}, run={self.run_id[:8]})"


def task_key(task: Any) -> str | None:
    """A task's identity within a kickoff (crewai's ``Task.id``)."""
    if task is None:
        return None
    ident = getattr(task, "id", None)
    return str(ident) if ident is not None else None


def handle_of(output: Any) -> LatentHandle | None:
    """The handle a TaskOutput carries, or None."""
    handle = getattr(output, HANDLE_ATTRIBUTE, None)
    return handle if isinstance(handle, LatentHandle) else None


def context_of(output: Any) -> AVPContext | None:
    """The :class:`~avp_core.AVPContext` a TaskOutput carries (a LatentCrew kickoff's output)."""
    handle = handle_of(output)
    return handle.context if handle else None


def attach(output: Any, handle: LatentHandle) -> None:
    """Attach ``handle`` to a TaskOutput (never raises: a handle must not break a kickoff)."""
    try:
        setattr(output, HANDLE_ATTRIBUTE, handle)
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - exotic outputs
        object.__setattr__(output, HANDLE_ATTRIBUTE, handle)


@dataclass
class _Plan:
    context: AVPContext
    llm: Any
    used: bool = False


class KickoffRun:
    """The latent state of one kickoff: produced handles and planned continuations, by task."""

    def __init__(self, crew_tasks: Iterable[str] = (), *, hierarchical: bool = False) -> None:
        self.run_id = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._produced: dict[str, LatentHandle] = {}
        self._order: list[str] = []
        self._plans: dict[str, _Plan] = {}
        self._parents: dict[str, str | None] = {}
        self._calls: dict[tuple[str, int], tuple[list[dict[str, Any]], AVPContext]] = {}
        self._crew_tasks = frozenset(crew_tasks)
        self._hierarchical = hierarchical

    # -- written by the LLM ----------------------------------------------------------------

    def continuation(self, key: str | None, llm: Any) -> AVPContext | None:
        """The context ``llm`` should continue for the task ``key`` (None: plain text)."""
        if key is None:
            return None
        with self._lock:
            plan = self._plans.get(key)
            if plan is None or plan.llm is not llm:
                return None
            plan.used = True
            return plan.context

    def record(self, key: str, context: AVPContext, *, continued: AVPContext | None) -> None:
        """The latest context the task ``key``'s LLM produced (its last call wins)."""
        parent = continued.context_id if continued is not None else None
        handle = LatentHandle(context, self.run_id, key, parent)
        with self._lock:
            self._produced[key] = handle
            if key in self._order:
                self._order.remove(key)
            self._order.append(key)
            self._parents[context.context_id] = parent

    def remember_call(
        self, key: str, llm: Any, messages: list[dict[str, Any]], context: AVPContext
    ) -> None:
        """The messages of ``llm``'s latest call for task ``key`` and the context it made."""
        with self._lock:
            self._calls[(key, id(llm))] = (messages, context)

    def last_call(self, key: str, llm: Any) -> tuple[list[dict[str, Any]], AVPContext] | None:
        with self._lock:
            return self._calls.get((key, id(llm)))

    def delegated(self, key: str) -> bool:
        """Whether ``key`` is a task a hierarchical crew's manager made for a worker (its
        first call: a task is planned once)."""
        with self._lock:
            return self._hierarchical and key not in self._crew_tasks and key not in self._plans

    def latest_worker_context(
        self, can_continue: Callable[[AVPContext], bool]
    ) -> AVPContext | None:
        """The context of the latest delegated task that ``can_continue`` accepts."""
        with self._lock:
            keys = [k for k in reversed(self._order) if k not in self._crew_tasks]
            contexts = [self._produced[k].context for k in keys]
        return next((c for c in contexts if can_continue(c)), None)

    # -- read by the crew ------------------------------------------------------------------

    def handle(self, key: str | None) -> LatentHandle | None:
        with self._lock:
            return self._produced.get(key) if key is not None else None

    def owns(self, handle: LatentHandle | None) -> bool:
        return handle is not None and handle.run_id == self.run_id

    def recency(self, handle: LatentHandle) -> int:
        """Completion order of the handle's task in this run (higher: later)."""
        with self._lock:
            return self._order.index(handle.task_key) if handle.task_key in self._order else -1

    def contains(self, outer: AVPContext, inner: AVPContext) -> bool:
        """Whether ``outer`` continued (directly or not) ``inner``: its KV holds inner's."""
        with self._lock:
            current: str | None = outer.context_id
            while current is not None:
                if current == inner.context_id:
                    return True
                current = self._parents.get(current)
            return False

    def plan(self, key: str, context: AVPContext, llm: Any) -> None:
        with self._lock:
            self._plans[key] = _Plan(context, llm)

    def unplan(self, key: str) -> None:
        with self._lock:
            self._plans.pop(key, None)

    def planned_but_unused(self, key: str) -> bool:
        with self._lock:
            plan = self._plans.get(key)
            return plan is not None and not plan.used


def current_run() -> KickoffRun | None:
    """The run of the LatentCrew kickoff this code runs in, if any."""
    return _CURRENT.get()


@contextmanager
def activate(crew_tasks: Iterable[str] = (), *, hierarchical: bool = False) -> Iterator[KickoffRun]:
    """Make a new run current for the duration of the block (one kickoff)."""
    run = KickoffRun(crew_tasks, hierarchical=hierarchical)
    token = _CURRENT.set(run)
    try:
        yield run
    finally:
        _CURRENT.reset(token)
