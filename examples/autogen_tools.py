"""Tools in AutoGen: an AssistantAgent's tool loop (text vs latent) and a Swarm handoff.

The built-in model has random weights and never chooses a tool by itself, so its replies are
scripted (the calls a trained model writes); every call still runs on the model, and AutoGen
runs the loop, the tools and the handoff.
"""

import asyncio

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import HandoffTermination, MaxMessageTermination
from autogen_agentchat.teams import Swarm
from avp_autogen import AVPChatCompletionClient

from avp_core import HuggingFaceConnector
from avp_core.testing import scripted
from avp_core.tools import format_call

connector = HuggingFaceConnector.from_pretrained("tiny-qwen2")  # built-in, offline


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# -- an agent with a tool: three model calls in one run ---------------------------------------
loop = [format_call("add", {"a": 2, "b": 3}), format_call("add", {"a": 5, "b": 4}), "It is 9."]
for latent in (False, True):
    client = AVPChatCompletionClient(connector, latent=latent, max_new_tokens=48)
    agent = AssistantAgent(
        "calculator",
        model_client=client,
        tools=[add],
        max_tool_iterations=3,
        system_message="Use the add tool for sums.",
    )
    with scripted(connector, loop), connector.record() as calls:
        result = asyncio.run(agent.run(task="Add 2 and 3, then add 4."))
    print("latent" if latent else "text  ", "answer:", result.messages[-1].content)
    print("  prefilled per call:", [u.prefilled_tokens for u in calls])
    print("  reused per call:   ", [u.reused_tokens for u in calls])


# -- a Swarm: the triage agent hands off to the billing agent through a tool call -------------
def reply(prompt: str) -> str:
    if "You route requests." in prompt.split("<|im_end|>", 1)[0]:
        return format_call("transfer_to_billing", {})
    return "Your invoice is on its way.\n" + format_call("transfer_to_user", {})


client = AVPChatCompletionClient(connector, max_new_tokens=48)
triage = AssistantAgent(
    "triage", model_client=client, handoffs=["billing"], system_message="You route requests."
)
billing = AssistantAgent(
    "billing", model_client=client, handoffs=["user"], system_message="You handle invoices."
)
stop = HandoffTermination("user") | MaxMessageTermination(8)
with scripted(connector, reply), connector.record() as calls:
    result = asyncio.run(Swarm([triage, billing], termination_condition=stop).run(task="Invoice?"))
for message in result.messages:
    print(f"{message.source:8} {type(message).__name__:22} {message.to_text()[:40]}")
print("prefilled per call:", [u.prefilled_tokens for u in calls])
print("reused per call:   ", [u.reused_tokens for u in calls])
