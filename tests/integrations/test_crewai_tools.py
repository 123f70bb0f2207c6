"""Tools with CrewAI: an agent's native tool loop inside a LatentCrew, and a hierarchical
LatentCrew whose manager delegates through crewai's delegation tools.

The random-weight model never chooses a tool, so each test scripts its replies
(:func:`avp_core.testing.scripted`): the model still prefills and decodes every call, the
chat template renders the tools (or crewai's ReAct text asks for them, on crewai without
native tool calls), and crewai parses and runs the calls.
"""

from __future__ import annotations

import itertools
import json
import re

from avp_crewai import AVPLLM, LatentCrew
from avp_crewai.llm import NATIVE_TOOLS
from crewai import Agent, Process, Task
from crewai.tools import tool
from test_crewai import _offline_crewai  # noqa: F401  (crewai offline, quiet, own storage)

from avp_core.testing import scripted
from avp_core.tools import format_call

TOKENS = 128  # the delegation calls are long


@tool("Add numbers")
def add_numbers(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def use_tool(name: str, react_name: str, **arguments: object) -> str:
    """A tool call in the format this crewai asks for: native block or ReAct text."""
    if NATIVE_TOOLS:
        return format_call(name, arguments)
    return f"Thought: I use the tool.\nAction: {react_name}\nAction Input: {json.dumps(arguments)}"


def answer(text: str) -> str:
    return text if NATIVE_TOOLS else f"Thought: I know it.\nFinal Answer: {text}"


def results_seen(prompt: str) -> int:
    """Tool results the prompt already holds (native tool turns or ReAct observations)."""
    turns = [t.split("<|im_end|>")[0] for t in prompt.split("<|im_start|>assistant")[1:]]
    return prompt.count("<|im_start|>tool") + sum(t.count("Observation:") for t in turns)


def speaker(prompt: str) -> str:
    """The role of the agent whose prompt this is (the last system turn naming a role)."""
    return re.findall(r"<\|im_start\|>system\nYou are ([\w ]+)\.", prompt)[-1]


def agent(role: str, llm: AVPLLM, **kwargs: object) -> Agent:
    return Agent(role=role, goal=f"Do the {role} work.", backstory="Brief.", llm=llm, **kwargs)


def test_a_tool_loop_in_a_latent_crew_continues_each_call(qwen):
    def reply(prompt: str) -> str | None:
        if speaker(prompt) != "Counter":
            return answer("Rivers run to the sea.")
        if results_seen(prompt) == 0:
            return use_tool("add_numbers", "Add numbers", a=2, b=3)
        return answer("The sum is 5.")

    writer = agent("Writer", AVPLLM(qwen, max_new_tokens=TOKENS))
    counter = agent("Counter", AVPLLM(qwen, max_new_tokens=TOKENS), tools=[add_numbers])
    first = Task(description="Write a line about rivers.", expected_output="A line.", agent=writer)
    second = Task(
        description="Add 2 and 3 with the tool.",
        expected_output="The sum.",
        agent=counter,
        context=[first],
    )
    crew = LatentCrew(agents=[writer, counter], tasks=[first, second], process=Process.sequential)
    with scripted(qwen, reply), qwen.record() as usages:
        result = crew.kickoff()
    assert result.tasks_output[1].raw.endswith("The sum is 5.")
    writer_call, tool_call, final_call = usages
    assert tool_call.reused_tokens == writer_call.prompt_tokens + writer_call.completion_tokens
    if NATIVE_TOOLS:  # the call after the tool result sends only that result
        assert final_call.reused_tokens == tool_call.prompt_tokens + tool_call.completion_tokens
    else:  # crewai's ReAct loop rewrites the turn (an observation is appended): text again
        assert final_call.reused_tokens == tool_call.reused_tokens


def test_hierarchical_latent_crew_delegates_and_workers_hand_off_latently(qwen):
    def reply(prompt: str) -> str | None:
        if speaker(prompt) == "Crew Manager":
            done = results_seen(prompt.rsplit("You are Crew Manager", 1)[-1])
            if done < 2:
                coworker = ("Researcher", "Writer")[done]
                return use_tool(
                    "delegate_work_to_coworker",
                    "Delegate work to coworker",
                    task=f"Do the {coworker.lower()} step.",
                    context="About rivers.",
                    coworker=coworker,
                )
            return answer("Rivers: researched and written.")
        return answer("Done with my step.")

    manager = AVPLLM(qwen, max_new_tokens=TOKENS)
    workers = [
        agent(role, AVPLLM(qwen, max_new_tokens=TOKENS)) for role in ("Researcher", "Writer")
    ]
    task = Task(description="Research rivers, then write about them.", expected_output="A text.")
    crew = LatentCrew(
        agents=workers, tasks=[task], process=Process.hierarchical, manager_llm=manager
    )
    with scripted(qwen, reply) as script, qwen.record() as usages:
        result = crew.kickoff()
    assert result.raw.endswith("Rivers: researched and written.")
    calls = list(zip(script.prompts, usages))
    researcher = [u for p, u in calls if "You are Researcher" in p and "You are Writer" not in p]
    writer = [u for p, u in calls if "You are Writer" in p]
    assert researcher and writer
    # the writer continued the researcher's KV (handoff): it reads that whole context latently
    assert "You are Researcher" in next(p for p, _ in calls if "You are Writer" in p)
    assert writer[0].reused_tokens >= researcher[0].prompt_tokens + researcher[0].completion_tokens
    managers = [u for p, u in calls if "Crew Manager" in p.split("<|im_end|>", 1)[0]]
    for previous, usage in itertools.pairwise(managers):
        assert usage.reused_tokens >= previous.prompt_tokens  # its own earlier turns
