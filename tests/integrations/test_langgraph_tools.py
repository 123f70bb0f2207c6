"""Tool calling with LangGraph's own agents: create_react_agent and langgraph-supervisor.

The random-weight model never chooses a tool, so each test scripts its replies
(:func:`avp_core.testing.scripted`): the model still prefills and decodes every call, the
chat template renders the tools, the parser reads the calls, LangGraph runs the tools.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import pytest
from avp_langgraph import AVPChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from pydantic import BaseModel

from avp_core.errors import InvalidRequestError
from avp_core.testing import scripted
from avp_core.tools import format_call

with warnings.catch_warnings():  # deprecated in langgraph 1.x in favour of langchain's agents
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def lookup(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}."


def call(name: str, **arguments: Any) -> str:
    return format_call(name, arguments)


def model(connector, **kwargs: Any) -> AVPChatModel:
    return AVPChatModel(connector=connector, **{"max_new_tokens": 48, **kwargs})


def avp(message: AIMessage) -> dict:
    return message.response_metadata["avp"]


def last_turn(prompt: str) -> str:
    return prompt.rsplit("<|im_start|>", 2)[-2]


REACT = [call("add", a=2, b=3), call("add", a=5, b=4), "The total is 9."]


def react(connector, latent: bool) -> tuple[list[Any], list[Any]]:
    agent = create_react_agent(model(connector, latent=latent), [add], prompt="Use the tools.")
    with scripted(connector, REACT), connector.record() as calls:
        state = agent.invoke({"messages": [HumanMessage("Add 2 and 3, then add 4.")]})
    return state["messages"], calls


def test_react_agent_equals_text_and_never_prefills_its_own_turns_again(qwen):
    text, text_calls = react(qwen, latent=False)
    latent, latent_calls = react(qwen, latent=True)
    kinds = [type(m).__name__ for m in latent]
    assert kinds == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert [m.content for m in latent] == [m.content for m in text]
    assert latent[1].tool_calls[0]["args"] == {"a": 2, "b": 3} and latent[2].content == "5"
    assert latent[4].content == "9" and latent[5].content == "The total is 9."
    assert [m.tool_calls for m in latent[1::2] if isinstance(m, AIMessage)] == [
        m.tool_calls for m in text[1::2] if isinstance(m, AIMessage)
    ]
    assert all(u.reused_tokens == 0 for u in text_calls)
    for previous, usage in itertools.pairwise(latent_calls):
        # everything up to the tool's result is reused: the prompt and the call it made
        assert usage.reused_tokens == previous.prompt_tokens + previous.completion_tokens
    assert sum(u.prefilled_tokens for u in latent_calls) < 0.5 * sum(
        u.prefilled_tokens for u in text_calls
    )
    assert latent[5].usage_metadata["input_token_details"]["cache_read"] > 0


def test_bad_calls_are_kept_as_text_and_reported_as_invalid_tool_calls(qwen):
    bound = model(qwen).bind_tools([add])
    bad = [
        '<tool_call>\n{"name": "add", "arguments": {"a": 2,}}\n</tool_call>',
        call("multiply", a=2, b=3),
        call("add", a="two", b=3),
    ]
    with scripted(qwen, bad):
        replies = [bound.invoke("Add 2 and 3.") for _ in bad]
    errors = [reply.invalid_tool_calls[0]["error"] for reply in replies]
    assert "not valid JSON" in errors[0]
    assert "unknown tool 'multiply'" in errors[1]
    assert "arguments.a must be integer" in errors[2]
    for reply, text in zip(replies, bad):
        assert reply.tool_calls == [] and reply.content == text  # nothing dropped
        assert reply.invalid_tool_calls[0]["id"]


def test_tool_choice_forces_a_call_and_streams_the_same_calls(qwen):
    bound = model(qwen).bind_tools([add, lookup], tool_choice="lookup")
    with scripted(qwen, [call("lookup", city="Paris")] * 2) as script:
        reply = bound.invoke("Hello!")
        chunks = list(bound.stream("Hello!"))
    assert script.prompts[0].endswith('<tool_call>\n{"name": "lookup", "arguments": ')
    assert reply.tool_calls[0]["name"] == "lookup"
    assert reply.tool_calls[0]["args"] == {"city": "Paris"}
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.tool_calls == reply.tool_calls
    assert all("<tool_call>" not in str(chunk.content) for chunk in chunks)
    with pytest.raises(InvalidRequestError, match="tool_choice"):
        model(qwen).bind_tools([add], tool_choice="multiply")


def test_parallel_tool_calls_off_keeps_the_first_call_and_reports_the_rest(qwen):
    two = call("add", a=1, b=2) + "\n" + call("lookup", city="Oslo")
    with scripted(qwen, [two, two]):
        both = model(qwen, max_new_tokens=96).bind_tools([add, lookup]).invoke("Go.")
        first = model(qwen, max_new_tokens=96).bind_tools([add, lookup], parallel_tool_calls=False)
        first = first.invoke("Go.")
    assert [c["name"] for c in both.tool_calls] == ["add", "lookup"]
    assert [c["name"] for c in first.tool_calls] == ["add"]
    assert first.invalid_tool_calls[0]["name"] == "lookup"
    assert "parallel_tool_calls=False" in first.invalid_tool_calls[0]["error"]


class Weather(BaseModel):
    city: str
    degrees: int


def test_structured_output_through_a_forced_tool_call(qwen):
    structured = model(qwen).with_structured_output(Weather)
    with scripted(qwen, [call("Weather", city="Oslo", degrees=-3)]) as script:
        assert structured.invoke("Weather in Oslo?") == Weather(city="Oslo", degrees=-3)
    assert script.prompts[0].endswith('<tool_call>\n{"name": "')


def test_supervisor_routes_to_a_tool_agent_and_reuses_its_own_turns(qwen):
    supervisor_module = pytest.importorskip("langgraph_supervisor")

    def reply(prompt: str) -> str | None:
        system = prompt.split("<|im_end|>", 1)[0]
        if "team supervisor" in system:
            if "The sum is 5." not in prompt:
                return call("transfer_to_math_expert")
            return "The answer is 5."
        if "math expert" in system:
            return (
                "The sum is 5." if last_turn(prompt).startswith("tool") else call("add", a=2, b=3)
            )
        return None

    math_expert = create_react_agent(
        model(qwen), [add], name="math_expert", prompt="You are a math expert. Use add."
    )
    writer = create_react_agent(model(qwen), [], name="writer", prompt="You write prose.")
    team = supervisor_module.create_supervisor(
        [math_expert, writer], model=model(qwen), prompt="You are a team supervisor."
    ).compile()
    with scripted(qwen, reply):
        state = team.invoke({"messages": [HumanMessage("What is 2 plus 3?")]})
    messages = state["messages"]
    assert messages[-1].content == "The answer is 5."
    # the math expert ran its tool loop (its last message is kept in the shared history)
    assert any(m.name == "math_expert" and m.content == "The sum is 5." for m in messages)
    own = [m for m in messages if isinstance(m, AIMessage) and avp_report(m)]
    supervisor = [m for m in own if m.name == "supervisor" and m.tool_calls]
    final = messages[-1]
    assert supervisor and avp(final)["reused_tokens"] >= (
        avp(supervisor[0])["prompt_tokens"] + avp(supervisor[0])["completion_tokens"]
    )


def avp_report(message: AIMessage) -> dict | None:
    return message.response_metadata.get("avp")


def test_handoff_layout_sends_the_receivers_own_system_prompt(qwen):
    chat = model(qwen, layout="handoff", max_new_tokens=6)
    graph = StateGraph(MessagesState)
    for name in ("writer", "reviewer"):

        def node(state: MessagesState, name: str = name) -> dict:
            instruction = SystemMessage(f"You are the {name}; follow the {name} rules.")
            return {"messages": [chat.invoke([instruction, *state["messages"]])]}

        graph.add_node(name, node)
    graph.add_edge(START, "writer")
    graph.add_edge("writer", "reviewer")
    graph.add_edge("reviewer", END)
    with scripted(qwen, lambda prompt: None) as script:
        state = graph.compile().invoke({"messages": [HumanMessage("Write a haiku.")]})
    reviewer = state["messages"][-1]
    assert avp(reviewer)["layout"] == "handoff" and avp(reviewer)["reused_tokens"] > 0
    after_writer = script.prompts[1].split("follow the writer rules", 1)[1]
    assert "You are the reviewer; follow the reviewer rules." in after_writer
