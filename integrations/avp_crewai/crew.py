"""LatentCrew: a crewai ``Crew`` whose tasks continue the KV-cache of the task they build on.

The seam is ``Crew._get_context(task, task_outputs)``, the one place crewai turns the outputs
of a task's context tasks into the "context" text the agent reads. LatentCrew overrides it:
when the task's agent runs an :class:`~avp_crewai.AVPLLM` (latent) whose handshake with the
latest context task's model is LATENT, that task's context is planned as a handoff and its
text is left out; the other context tasks still arrive as text (those already inside the
continued context are not repeated). Everything else (prompts, parsing, callbacks, logging)
is crewai's own.

In a hierarchical crew the manager's crew tasks are planned the same way; the tasks it
delegates to workers through crewai's delegation tools are not crew tasks, and each such
task's first call continues the latest earlier worker's context (see
:meth:`avp_crewai.AVPLLM._plan_handoff`).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any

from crewai import Crew, Process
from crewai.utilities.formatter import aggregate_raw_outputs_from_task_outputs

from . import run as _run
from .llm import AVPLLM

logger = logging.getLogger("avp_crewai")


class LatentCrew(Crew):
    """A ``Crew`` (same constructor) whose tasks continue their context task's AVPContext.

    Per task, the latest context task whose context the task's agent can reuse (an
    :class:`AVPLLM` with ``latent=True`` on the same model) is continued in the handoff
    layout; otherwise the task gets crewai's normal text context. Each task output carries
    its own handle (:func:`avp_crewai.context_of`), valid within the kickoff that made it.
    """

    # -- kickoff ---------------------------------------------------------------------------

    def kickoff(self, *args: Any, **kwargs: Any) -> Any:
        """crewai's kickoff, with a fresh latent run (``kickoff_async`` runs this in a thread)."""
        with self._activate():
            return super().kickoff(*args, **kwargs)

    if hasattr(Crew, "akickoff"):  # crewai >= 1.4: native async kickoff

        async def akickoff(self, *args: Any, **kwargs: Any) -> Any:
            """crewai's native async kickoff, with a fresh latent run."""
            with self._activate():
                return await super().akickoff(*args, **kwargs)

    def copy(self) -> Any:  # type: ignore[override]  # crewai's own override
        """crewai's copy (used by ``kickoff_for_each``), still a LatentCrew."""
        copied = super().copy()
        copied.__class__ = type(self)  # crewai builds a plain Crew; the fields are the same
        return copied

    def _activate(self) -> AbstractContextManager[_run.KickoffRun]:
        """A fresh latent run that knows the crew's tasks (a hierarchical manager's delegated
        tasks are the others)."""
        keys = [key for task in self.tasks if (key := _run.task_key(task)) is not None]
        return _run.activate(keys, hierarchical=self.process == Process.hierarchical)

    # -- the seam --------------------------------------------------------------------------

    def _get_context(self, task: Any, task_outputs: list[Any]) -> str:  # type: ignore[override]
        """The context text for ``task``, minus the context task it continues (see module)."""
        text: str = super()._get_context(task, task_outputs)
        run = _run.current_run()
        if run is None or not task.context:
            return text
        pairs = self._context_pairs(task, task_outputs)
        for owner, output in pairs:
            self._attach(run, owner, output)
        llm = self._latent_llm(task)
        candidates = [
            (output, handle)
            for _, output in pairs
            if (handle := _run.handle_of(output)) is not None and run.owns(handle)
        ]
        usable = [c for c in candidates if llm is not None and llm.can_continue(c[1].context)]
        key = _run.task_key(task)
        if not usable or key is None:
            if candidates:
                logger.info("task %r reads its context as text", _name(task))
            return text
        chosen_output, chosen = max(usable, key=lambda c: run.recency(c[1]))
        rest = [
            output
            for _, output in pairs
            if output is not chosen_output
            and not ((h := _run.handle_of(output)) and run.contains(chosen.context, h.context))
        ]
        run.plan(key, chosen.context, llm)
        logger.info(
            "task %r continues context %s (%d positions); %d context task(s) as text",
            _name(task),
            chosen.context.context_id[:8],
            chosen.context.seq_len,
            len(rest),
        )
        return aggregate_raw_outputs_from_task_outputs(rest) if rest else ""

    def _process_task_result(self, task: Any, output: Any) -> None:
        super()._process_task_result(task, output)
        run = _run.current_run()
        if run is None:
            return
        self._attach(run, task, output)
        key = _run.task_key(task)
        if key is not None and run.planned_but_unused(key):
            raise RuntimeError(
                f"task {_name(task)!r} was planned to continue its context "
                "task's KV-cache, but its LLM never saw the plan (crewai ran the call outside "
                "this kickoff's context); please report this with your crewai version"
            )

    # -- helpers ---------------------------------------------------------------------------

    def _context_pairs(self, task: Any, task_outputs: list[Any]) -> list[tuple[Any, Any]]:
        """(context task, its output) in crewai's order; the owner may be None if unknown."""
        if isinstance(task.context, list):
            return [(t, t.output) for t in task.context if t.output is not None]
        owners = {id(t.output): t for t in self.tasks if t.output is not None}
        return [(owners.get(id(output)), output) for output in task_outputs]

    def _latent_llm(self, task: Any) -> AVPLLM | None:
        """The task's agent's AVPLLM, if the task runs where the plan reaches its LLM calls."""
        agent = self._get_agent_to_use(task)
        llm = getattr(agent, "llm", None)
        if not isinstance(llm, AVPLLM) or not llm.latent:
            return None
        # some crewai versions run these in bare threads, without this kickoff's contextvars
        if task.async_execution or getattr(agent, "max_execution_time", None):
            return None
        return llm

    @staticmethod
    def _attach(run: _run.KickoffRun, task: Any, output: Any) -> None:
        if task is None or output is None or _run.handle_of(output) is not None:
            return
        handle = run.handle(_run.task_key(task))
        if handle is not None:
            _run.attach(output, handle)


def _name(task: Any) -> str:
    return str(task.name or task.description[:40])
