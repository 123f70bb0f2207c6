"""AutoGen quickstart: a round-robin team whose agents hand each other their KV-cache."""

import asyncio

from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from avp_autogen import AVPAssistantAgent, LatentMessage

from avp_core import HuggingFaceConnector


async def main() -> None:
    llm = HuggingFaceConnector.from_pretrained("tiny-qwen2")
    agents = [
        AVPAssistantAgent(
            name, connector=llm, system_message=f"You are the {name}.", max_new_tokens=24
        )
        for name in ("planner", "critic")
    ]
    team = RoundRobinGroupChat(
        agents, termination_condition=MaxMessageTermination(4), custom_message_types=[LatentMessage]
    )
    with llm.record() as calls:
        await team.run(task="Plan three days in Lisbon.")
    for usage in calls:
        print(usage.reused_tokens, "reused,", usage.prefilled_tokens, "prefilled")


asyncio.run(main())
