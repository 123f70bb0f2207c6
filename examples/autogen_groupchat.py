"""AutoGen group chat on one local model: a text team next to a latent team (offline).

Three agents take six turns in a RoundRobinGroupChat.

- text team: stock AssistantAgents on ``AVPChatCompletionClient(latent=False)``; every turn
  prefills the whole conversation again.
- latent team: AVPAssistantAgents; every turn after the first continues the previous
  agent's context (KV), so only the new instructions are prefilled.

Then the latent team's state is saved as JSON, loaded into a new team, and the chat goes on
with reuse. The built-in models have random weights, so the words are noise; the token
counts are what this shows. Run: ``python examples/autogen_groupchat.py [--model bench-qwen2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import ChatAgent, Team
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import BaseChatMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from avp_autogen import AVPAssistantAgent, AVPChatCompletionClient, LatentMessage

from avp_core import HuggingFaceConnector, Usage

TASK = (
    "Plan a three-day trip to Lisbon for two people: a museum, a train ride to Sintra, "
    "and one evening of live music. Keep the budget under 900 euros."
)
ROLES = {
    "planner": "You are the planner. Write a day-by-day plan.",
    "critic": "You are the critic. Name the weakest part of the plan and why.",
    "editor": "You are the editor. Fix the plan using the critique.",
}
TURNS = 6


def latent_team(llm: HuggingFaceConnector, tokens: int, messages: int) -> RoundRobinGroupChat:
    agents: list[ChatAgent | Team] = [
        AVPAssistantAgent(name, connector=llm, system_message=role, max_new_tokens=tokens)
        for name, role in ROLES.items()
    ]
    return RoundRobinGroupChat(
        agents,
        termination_condition=MaxMessageTermination(messages),  # the task counts as one
        custom_message_types=[LatentMessage],
    )


def text_team(llm: HuggingFaceConnector, tokens: int, messages: int) -> RoundRobinGroupChat:
    client = AVPChatCompletionClient(llm, latent=False, max_new_tokens=tokens)
    agents: list[ChatAgent | Team] = [
        AssistantAgent(name, model_client=client, system_message=role)
        for name, role in ROLES.items()
    ]
    return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(messages))


async def run(
    llm: HuggingFaceConnector, team: RoundRobinGroupChat, task: str | None
) -> tuple[list[str], list[Usage]]:
    """Run the team; return (speakers, per-call usage)."""
    with llm.record() as calls:
        result = await team.run(task=task)
    speakers = [m.source for m in result.messages if isinstance(m, BaseChatMessage)]
    return [s for s in speakers if s != "user"], list(calls)


def report(title: str, speakers: list[str], calls: list[Usage], first: int = 1) -> None:
    print(f"\n{title}")
    print(f"{'turn':>4}  {'agent':<8} {'prompt':>7} {'reused':>7} {'prefilled':>9}")
    for turn, (name, usage) in enumerate(zip(speakers, calls), first):
        print(
            f"{turn:>4}  {name:<8} {usage.prompt_tokens:>7} {usage.reused_tokens:>7} "
            f"{usage.prefilled_tokens:>9}"
        )
    prefilled = sum(u.prefilled_tokens for u in calls)
    print(f"      total prefilled {prefilled} tokens")


async def main(model: str, tokens: int) -> None:
    llm = HuggingFaceConnector.from_pretrained(model)
    print(f"model {llm.identity.short()}, {TURNS} turns, {tokens} tokens per answer")
    llm.generate(TASK, max_new_tokens=2)  # warm-up, so neither team pays for first-call setup

    text = await run(llm, text_team(llm, tokens, TURNS + 1), TASK)
    report("text team (stock AssistantAgent, latent=False)", *text)
    latent = await run(llm, latent_team(llm, tokens, TURNS + 1), TASK)
    report("latent team (AVPAssistantAgent)", *latent)
    text_prefill = sum(u.prefilled_tokens for u in text[1])
    latent_prefill = sum(u.prefilled_tokens for u in latent[1])
    print(f"\nlatent prefilled {text_prefill / latent_prefill:.1f}x fewer tokens than text")

    # save mid-chat, restore into a new team (as a new process would), and go on
    first = latent_team(llm, tokens, messages=4)  # the task and three turns
    await first.run(task=TASK)
    state = json.dumps(await first.save_state())  # references; the KV is in the store
    resumed = latent_team(llm, tokens, messages=3)  # three more turns
    await resumed.load_state(json.loads(state))
    resumed_run = await run(llm, resumed, task=None)
    report(f"after load_state from a {len(state) / 1e3:.0f} KB JSON state", *resumed_run, first=4)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-qwen2", help="built-in name or checkpoint")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per answer")
    args = parser.parse_args()
    asyncio.run(main(args.model, args.tokens))
