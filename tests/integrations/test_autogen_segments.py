"""Segment reuse in AutoGen: agents with their own system_message in a RoundRobinGroupChat."""

from __future__ import annotations

import asyncio

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import BaseChatMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from avp_autogen import AVPAssistantAgent, AVPChatCompletionClient, LatentMessage

from avp_core.reuse import SegmentReuse
from avp_suite.bench.workload import make_document

NAMES = ("researcher", "critic", "writer")
SYSTEM = (
    "You are the researcher. List the facts in the document that matter.",
    "You are the critic. Point out what the researcher missed.",
    "You are the writer. Turn the notes into one clear paragraph.",
)
NO_ANCHORS = SegmentReuse(recompute=0.0, anchors=False)


@pytest.fixture(scope="module")
def task(qwen) -> str:
    document, _ = make_document(qwen.tokenizer, 300)
    return f"Document:\n{document}\n\nWhat should the team report?"


def team(agents):
    return RoundRobinGroupChat(
        agents,
        termination_condition=MaxMessageTermination(len(agents) + 1),
        custom_message_types=[LatentMessage],
    )


def stock_team_run(connector, task, **client_options):
    client = AVPChatCompletionClient(connector, max_new_tokens=12, **client_options)
    agents = [
        AssistantAgent(name, model_client=client, system_message=system)
        for name, system in zip(NAMES, SYSTEM)
    ]
    with connector.record() as calls:
        result = asyncio.run(team(agents).run(task=task))
    answers = [m.content for m in result.messages if isinstance(m, BaseChatMessage)][1:]
    return answers, calls


def test_client_with_segment_reuse_prefills_far_less(qwen, task):
    text_answers, text = stock_team_run(qwen, task, latent=False)
    _, exact = stock_team_run(qwen, task)
    answers, segments = stock_team_run(qwen, task, segment_reuse=NO_ANCHORS)
    total = {
        name: sum(u.prefilled_tokens for u in calls)
        for name, calls in (("text", text), ("exact", exact), ("segments", segments))
    }
    assert total["exact"] > 0.9 * total["text"]  # each agent's system_message differs
    assert total["segments"] < 0.5 * total["text"]
    assert all(u.approx_reused_tokens > 300 for u in segments[1:])
    assert [u.prompt_tokens for u in segments] == [u.prompt_tokens for u in text]
    assert len(answers) == len(text_answers) == 3


def test_client_recompute_one_gives_the_text_answers(qwen, task):
    text_answers, _ = stock_team_run(qwen, task, latent=False)
    answers, calls = stock_team_run(
        qwen, task, segment_reuse=SegmentReuse(recompute=1.0, anchors=False)
    )
    assert answers == text_answers
    assert all(u.approx_reused_tokens == 0 for u in calls)
    assert calls[-1].recomputed_tokens > 300


def test_assistant_agent_keeps_its_prompt_and_reuses_segments(qwen, task):
    text_answers, text = stock_team_run(qwen, task, latent=False)
    agents = [
        AVPAssistantAgent(
            name, connector=qwen, system_message=system, max_new_tokens=12, segment_reuse=settings
        )
        for name, system in zip(NAMES, SYSTEM)
        for settings in [SegmentReuse(recompute=1.0, anchors=False)]
    ]
    result = asyncio.run(team(agents).run(task=task))
    replies = [m for m in result.messages if isinstance(m, LatentMessage)]
    # the same prompt as the stock agents' (system message first, nothing reordered)
    assert [int(m.metadata["avp.prompt_tokens"]) for m in replies] == [
        u.prompt_tokens for u in text
    ]
    assert [m.content for m in replies] == text_answers  # recompute 1: dense, same answers

    agents = [
        AVPAssistantAgent(
            name,
            connector=qwen,
            system_message=system,
            max_new_tokens=12,
            segment_reuse=NO_ANCHORS,
        )
        for name, system in zip(NAMES, SYSTEM)
    ]
    result = asyncio.run(team(agents).run(task=task))
    replies = [m for m in result.messages if isinstance(m, LatentMessage)]
    assert [m.metadata["avp.mode"] for m in replies] == ["text", "segments", "segments"]
    assert all(int(m.metadata["avp.approx_reused_tokens"]) > 300 for m in replies[1:])


def test_agents_on_another_model_never_mix_kv(qwen, llama, task):
    agents = [
        AVPAssistantAgent(
            name,
            connector=model,
            system_message=system,
            max_new_tokens=12,
            segment_reuse=NO_ANCHORS,
        )
        for name, system, model in zip(NAMES, SYSTEM, (qwen, llama, qwen))
    ]
    result = asyncio.run(team(agents).run(task=task))
    replies = [m for m in result.messages if isinstance(m, LatentMessage)]
    assert replies[1].metadata["avp.approx_reused_tokens"] == "0"  # llama after qwen
    assert int(replies[2].metadata["avp.approx_reused_tokens"]) > 300  # qwen reuses qwen's
