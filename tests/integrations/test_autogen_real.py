"""AutoGen on the real model (SmolLM2-135M-Instruct): the exact latent client equals text."""

from __future__ import annotations

import asyncio

import torch
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import BaseChatMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core.models import SystemMessage, UserMessage
from avp_autogen import AVPChatCompletionClient
from avp_autogen.client import to_chat

TASK = (
    "Document: The Brenmoor ferry leaves the north pier at seven. It carries bicycles but not "
    "cars. The crossing takes forty minutes.\n\nWhat should a cyclist know about the ferry?"
)
NAMES = ("reader", "checker", "writer")
SYSTEM = "You are a careful member of a travel team. Answer in one or two sentences."
TOKENS = 96


def team_run(connector, *, latent: bool) -> tuple[list[str], list]:
    client = AVPChatCompletionClient(connector, latent=latent, max_new_tokens=TOKENS)
    agents = [AssistantAgent(n, model_client=client, system_message=SYSTEM) for n in NAMES]
    team = RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(4))
    with connector.record() as calls:
        result = asyncio.run(team.run(task=TASK))
    said = [m for m in result.messages if isinstance(m, BaseChatMessage) and m.source != "user"]
    return [m.to_model_text() for m in said], calls


def test_exact_latent_team_gives_the_text_teams_answers_and_stops_at_end_of_turn(smollm2):
    text, text_calls = team_run(smollm2, latent=False)
    latent, latent_calls = team_run(smollm2, latent=True)
    assert latent == text and all(answer.strip() for answer in text)
    assert [c.completion_tokens for c in latent_calls] == [c.completion_tokens for c in text_calls]
    assert all(c.completion_tokens < TOKENS for c in text_calls)  # each ended at <|im_end|>
    assert all(c.reused_tokens == 0 for c in text_calls)
    assert all(c.reused_tokens > 0 for c in latent_calls[1:])  # the system prompt and document
    prefilled = [sum(c.prefilled_tokens for c in run) for run in (latent_calls, text_calls)]
    assert prefilled[0] < prefilled[1]


def test_the_clients_prompt_reuses_a_context_with_the_same_logits(smollm2):
    client = AVPChatCompletionClient(smollm2, max_new_tokens=TOKENS)
    first = [SystemMessage(content=SYSTEM), UserMessage(content=TASK, source="user")]
    asyncio.run(client.create(first))
    follow = [*first, UserMessage(content="Now in five words.", source="user")]
    reply = asyncio.run(client.create(follow))
    assert client.last_usage.reused_tokens > 0
    chat = to_chat(follow)
    dense = smollm2.generate(chat, max_new_tokens=TOKENS, keep_logits=True)
    context = client.store.longest_prefix(smollm2.prompt_ids(chat))[0]
    reused = smollm2.generate(chat, max_new_tokens=TOKENS, context=context, keep_logits=True)
    assert reply.content == dense.text == reused.text and reused.token_ids == dense.token_ids
    assert torch.allclose(reused.first_logits, dense.first_logits, atol=1e-4, rtol=0)
    assert dense.finish_reason == reused.finish_reason == "stop"


def test_an_agents_free_answer_after_a_tool_equals_text(smollm2):
    """The tool call is scripted (the model is too small to choose it); the answer after the
    tool's result is the model's own, greedy, on both paths."""
    from avp_core.testing import scripted
    from avp_core.tools import format_call

    def ferry_time(pier: str) -> str:
        """When the ferry leaves a pier."""
        return f"The ferry leaves the {pier} pier at seven."

    def run(latent: bool) -> tuple[list[str], list]:
        agent = AssistantAgent(
            "guide",
            model_client=AVPChatCompletionClient(smollm2, latent=latent, max_new_tokens=48),
            tools=[ferry_time],
            max_tool_iterations=2,
            system_message="Answer with the tools' help.",
        )
        script = [format_call("ferry_time", {"pier": "north"})]
        with scripted(smollm2, script), smollm2.record() as calls:
            result = asyncio.run(agent.run(task="When does the ferry leave?"))
        return [m.to_text() for m in result.messages], calls

    (text, text_calls), (latent, latent_calls) = run(False), run(True)
    assert latent == text and latent[-1].strip()
    first, second = latent_calls
    assert second.reused_tokens == first.prompt_tokens + first.completion_tokens
    assert [u.reused_tokens for u in text_calls] == [0, 0]
