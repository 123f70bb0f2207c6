"""The shared N-agent chain workload (avp_suite.bench.workload) as a crewai crew.

One agent and one task per chain step, run sequentially: task 1 gets the workload's task
(document and question), task i > 1 the i-th role's instruction with ``context=[task i-1]``.
Latent: :class:`LatentCrew` with ``AVPLLM(latent=True)``; text: ``Crew`` with
``AVPLLM(latent=False)``. One AVPLLM per agent, all on the same connector.
"""

from __future__ import annotations

from typing import Any

from avp_crewai.crew import LatentCrew
from avp_crewai.llm import AVPLLM
from crewai import Agent, Crew, Process, Task

LATENT_PATH = "handoff: each task continues the whole chain (other prompts than text)"
"""How the latent run reuses KV (the demo prints it beside the answers)."""


def build_crew(connector: Any, workload: Any, *, latent: bool) -> Crew:
    """The chain as a crew (not yet kicked off)."""
    agents: list[Any] = []
    tasks: list[Task] = []
    for index in range(workload.agents):
        name, instruction = workload.role(index)
        llm = AVPLLM(
            connector,
            latent=latent,
            max_new_tokens=workload.answer_tokens,
            ignore_eos=workload.ignore_eos,
        )
        agent = Agent(
            role=name,
            goal=instruction,
            backstory=f"You are step {index + 1} of a {workload.agents}-agent review chain.",
            llm=llm,
            allow_delegation=False,
            verbose=False,
        )
        agents.append(agent)
        tasks.append(
            Task(
                description=workload.task if index == 0 else instruction,
                expected_output="A short answer.",
                agent=agent,
                context=[tasks[-1]] if tasks else None,
            )
        )
    crew_class = LatentCrew if latent else Crew
    return crew_class(agents=agents, tasks=tasks, process=Process.sequential, verbose=False)


def run_chain(connector: Any, workload: Any, *, latent: bool) -> list[str]:
    """Run the chain once; each task's output text, in order."""
    output: Any = build_crew(connector, workload, latent=latent).kickoff()
    return [task_output.raw for task_output in output.tasks_output]
