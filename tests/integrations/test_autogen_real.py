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
