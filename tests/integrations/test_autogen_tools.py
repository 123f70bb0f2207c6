"""Tool calling with AutoGen's own agents and teams: AssistantAgent(tools=...), structured
output, Swarm handoffs and a SelectorGroupChat whose selector reuses its earlier prompt.

The random-weight model never chooses a tool, so each test scripts its replies
(:func:`avp_core.testing.scripted`): the model still prefills and decodes every call, the
chat template renders the tools, the parser reads the calls and AutoGen runs them.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import HandoffTermination, MaxMessageTermination
from autogen_agentchat.messages import (
    HandoffMessage,
    StructuredMessage,
    ToolCallExecutionEvent,
)
from autogen_agentchat.teams import SelectorGroupChat, Swarm
from avp_autogen import AVPChatCompletionClient
from pydantic import BaseModel

from avp_core.testing import scripted
from avp_core.tools import format_call


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def call(name: str, **arguments: Any) -> str:
    return format_call(name, arguments)


def client(connector, **kwargs: Any) -> AVPChatCompletionClient:
    return AVPChatCompletionClient(connector, **{"max_new_tokens": 48, **kwargs})


def first_turn(prompt: str) -> str:
    return prompt.split("<|im_end|>", 1)[0]


def last_turn(prompt: str) -> str:
    return prompt.rsplit("<|im_start|>", 2)[-2]


def calculator(connector, latent: bool) -> tuple[Any, list[Any]]:
    agent = AssistantAgent(
        "calculator",
        model_client=client(connector, latent=latent),
        tools=[add],
        system_message="You are a calculator. Use the tools.",
        max_tool_iterations=2,  # the loop's calls keep the tools: each continues the last
    )
    with scripted(connector, [call("add", a=2, b=3), "The sum is 5."]), connector.record() as calls:
        result = asyncio.run(agent.run(task="What is 2 plus 3?"))
    return result, calls


def test_assistant_agent_runs_its_tool_and_reuses_the_call_turn(qwen):
    text, text_calls = calculator(qwen, latent=False)
    latent, latent_calls = calculator(qwen, latent=True)
    assert [m.to_text() for m in latent.messages] == [m.to_text() for m in text.messages]
    executed = [m for m in latent.messages if isinstance(m, ToolCallExecutionEvent)]
    assert executed[0].content[0].content == "5" and not executed[0].content[0].is_error
    assert latent.messages[-1].content == "The sum is 5."
    first, second = latent_calls
    assert second.reused_tokens == first.prompt_tokens + first.completion_tokens
    assert [u.reused_tokens for u in text_calls] == [0, 0]


def test_a_bad_call_gets_an_error_result_and_the_model_retries(qwen):
    agent = AssistantAgent(
        "calculator",
        model_client=client(qwen),
        tools=[add],
        max_tool_iterations=3,
        reflect_on_tool_use=True,
    )
    script = [
        '<tool_call>\n{"name": "add", "arguments": {"a": 2,}}\n</tool_call>',
        call("multiply", a=2, b=3),
        call("add", a=2, b=3),
        "The sum is 5.",
    ]
    with scripted(qwen, script):
        result = asyncio.run(agent.run(task="What is 2 plus 3?"))
    outcomes = [
        r for m in result.messages if isinstance(m, ToolCallExecutionEvent) for r in m.content
    ]
    assert [r.is_error for r in outcomes] == [True, True, False]
    assert "Error" in outcomes[0].content and outcomes[2].content == "5"
    assert result.messages[-1].content == "The sum is 5."


class Weather(BaseModel):
    city: str
    degrees: int


def test_output_content_type_gives_a_structured_message(qwen):
    agent = AssistantAgent("forecaster", model_client=client(qwen), output_content_type=Weather)
    with scripted(qwen, ['{"city": "Oslo", "degrees": -3}']) as script:
        result = asyncio.run(agent.run(task="Weather in Oslo?"))
    reply = result.messages[-1]
    assert isinstance(reply, StructuredMessage) and reply.content == Weather(
        city="Oslo", degrees=-3
    )
    assert '"degrees"' in script.prompts[0]  # the schema reached the model


def test_swarm_hands_off_through_a_tool_call(qwen):
    def reply(prompt: str) -> str | None:
        system = first_turn(prompt)
        if "You are Alice" in system:
            return call("transfer_to_bob")
        if "You are Bob" in system:
            return "Bob here: done."
        return None

    alice = AssistantAgent(
        "alice", model_client=client(qwen), handoffs=["bob"], system_message="You are Alice."
    )
    bob = AssistantAgent(
        "bob", model_client=client(qwen), handoffs=["user"], system_message="You are Bob."
    )
    team = Swarm(
        [alice, bob], termination_condition=MaxMessageTermination(4) | HandoffTermination("user")
    )
    with scripted(qwen, reply):
        result = asyncio.run(team.run(task="Please get Bob."))
    handoffs = [m for m in result.messages if isinstance(m, HandoffMessage)]
    assert handoffs[0].source == "alice" and handoffs[0].target == "bob"
    assert result.messages[-1].source == "bob" and result.messages[-1].content == "Bob here: done."


def test_selector_reuses_its_own_previous_prompt(qwen):
    turns = itertools.cycle(["writer", "critic"])

    def reply(prompt: str) -> str | None:
        if "select the next role" in prompt:
            return next(turns)
        return "A short line."

    shared = client(qwen)
    writer = AssistantAgent("writer", model_client=shared, system_message="You write.")
    critic = AssistantAgent("critic", model_client=shared, system_message="You criticise.")
    team = SelectorGroupChat(
        [writer, critic],
        model_client=shared,
        termination_condition=MaxMessageTermination(5),
        allow_repeated_speaker=True,  # the candidate list stays the same: the prompt only grows
    )
    with scripted(qwen, reply) as script, qwen.record() as calls:
        result = asyncio.run(team.run(task="Write a line about rain."))
    assert [m.source for m in result.messages[1:]] == ["writer", "critic", "writer", "critic"]
    selector = [u for u, p in zip(calls, script.prompts) if "select the next role" in p]
    assert len(selector) >= 3
    for previous, usage in itertools.pairwise(selector):
        assert usage.reused_tokens > previous.prompt_tokens // 2
