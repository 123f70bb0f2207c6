"""LatentMessages from a peer: signed contexts, and damaged KV that must not break a team."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import BaseChatMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from avp_autogen import AVPAssistantAgent, LatentMessage

from avp_core import AVPContext

KEY = b"autogen-key-0123456789abcdef"


def test_signed_latent_messages_load_only_with_the_key(qwen, monkeypatch, caplog):
    generation = qwen.generate([{"role": "user", "content": "Plan."}], max_new_tokens=4)
    monkeypatch.setattr(LatentMessage, "inline", True)  # stores sign their own records
    monkeypatch.setattr(LatentMessage, "key", KEY)
    message = LatentMessage(content=generation.text, source="a", context=generation.context)
    signed = dict(message.dump())
    assert LatentMessage.load(signed).context is not None
    monkeypatch.setattr(LatentMessage, "key", None)
    unsigned = dict(message.dump())
    monkeypatch.setattr(LatentMessage, "key", b"another-key-0123456789")
    with caplog.at_level(logging.WARNING, logger="avp_autogen"):
        assert LatentMessage.load(signed).context is None
        loaded = LatentMessage.load(unsigned)
    assert loaded.context is None and loaded.content == generation.text
    assert "signature does not match" in caplog.text and "not signed" in caplog.text


def test_a_team_given_damaged_kv_answers_from_the_text_and_goes_on(qwen):
    generation = qwen.generate([{"role": "user", "content": "Plan a trip."}], max_new_tokens=8)
    received = AVPContext.from_bytes(generation.context.to_bytes())
    one_head = tuple((k[:, :1], v[:, :1]) for k, v in received.kv)  # the model has two
    forged = dataclasses.replace(received, kv=one_head)
    task = LatentMessage(content=generation.text, source="peer", context=forged)
    agents = [
        AVPAssistantAgent(
            name, connector=qwen, system_message=f"You are the {name}.", max_new_tokens=8
        )
        for name in ("planner", "critic")
    ]
    team = RoundRobinGroupChat(
        agents,
        termination_condition=MaxMessageTermination(4),
        custom_message_types=[LatentMessage],
    )
    result = asyncio.run(team.run(task=task))
    replies = [m for m in result.messages if isinstance(m, BaseChatMessage) and m.source != "peer"]
    assert [m.source for m in replies] == ["planner", "critic", "planner"]
    assert int(replies[0].metadata["avp.reused_tokens"]) == 0
    assert all(int(m.metadata["avp.reused_tokens"]) > 0 for m in replies[1:])
