"""The shared N-agent chain workload as an AutoGen RoundRobinGroupChat (benchmarks, demo).

``latent=True``: AVPAssistantAgents, each continuing the previous agent's context.
``latent=False``: stock AssistantAgents on ``AVPChatCompletionClient(latent=False)``, same
prompts, every turn prefilled from scratch.
"""

from __future__ import annotations

import asyncio
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import ChatAgent, Team
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import BaseChatMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from avp_autogen.agent import AVPAssistantAgent
from avp_autogen.client import AVPChatCompletionClient
from avp_autogen.messages import LatentMessage

from avp_suite.bench.workload import ChainWorkload

LATENT_PATH = "handoff: each agent continues the last context (other prompts than text)"
"""How the latent run reuses KV (the demo prints it beside the answers)."""


def build_team(connector: Any, workload: ChainWorkload, *, latent: bool) -> RoundRobinGroupChat:
    """A round-robin team of ``workload.agents`` agents that stops after one turn each."""
    tokens = workload.answer_tokens
    agents: list[ChatAgent | Team] = []
    for index in range(workload.agents):
        name, instruction = workload.role(index)
        name = name.replace("-", "_")  # AutoGen agent names are Python identifiers
        if latent:
            agent = AVPAssistantAgent(
                name,
                connector=connector,
                system_message=instruction,
                max_new_tokens=tokens,
                ignore_eos=workload.ignore_eos,
                stream=False,
            )
            agents.append(agent)
        else:
            client = AVPChatCompletionClient(
                connector, latent=False, max_new_tokens=tokens, ignore_eos=workload.ignore_eos
            )
            agents.append(AssistantAgent(name, model_client=client, system_message=instruction))
    return RoundRobinGroupChat(
        agents,
        termination_condition=MaxMessageTermination(workload.agents + 1),
        custom_message_types=[LatentMessage],
    )


def run_chain(connector: Any, workload: ChainWorkload, *, latent: bool) -> list[str]:
    """Run the chain once; each agent's output text, in order."""

    async def run() -> list[str]:
        result = await build_team(connector, workload, latent=latent).run(task=workload.task)
        return [
            m.to_model_text()
            for m in result.messages
            if isinstance(m, BaseChatMessage) and m.source != "user"
        ]

    return asyncio.run(run())
