"""Tools in LangGraph: a ReAct agent and a supervisor, text vs latent, tokens per model call.

The built-in model has random weights and never chooses a tool by itself, so its replies are
scripted (the calls a trained model writes); every call still runs on the model, and
LangGraph runs the loop and the tools. Needs ``langgraph-supervisor`` for the second part.
"""

import warnings

from avp_langgraph import AVPChatModel
from langchain_core.tools import tool
from langgraph_supervisor import create_supervisor

from avp_core import HuggingFaceConnector
from avp_core.testing import scripted
from avp_core.tools import format_call

# langgraph 1.x points to langchain's create_agent; the prebuilt one still works
warnings.filterwarnings("ignore", message="create_react_agent has been moved")
from langgraph.prebuilt import create_react_agent  # noqa: E402

connector = HuggingFaceConnector.from_pretrained("tiny-qwen2")  # built-in, offline


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def model(latent: bool) -> AVPChatModel:
    return AVPChatModel(connector=connector, latent=latent, max_new_tokens=48)


# -- a ReAct agent: three model calls, two of them tool calls ---------------------------------
react = [format_call("add", {"a": 2, "b": 3}), format_call("add", {"a": 5, "b": 4}), "It is 9."]
for latent in (False, True):
    agent = create_react_agent(model(latent), [add], prompt="Use the add tool for sums.")
    with scripted(connector, react), connector.record() as calls:
        state = agent.invoke({"messages": [("user", "Add 2 and 3, then add 4.")]})
    print("latent" if latent else "text  ", "answer:", state["messages"][-1].content)
    print("  prefilled per call:", [u.prefilled_tokens for u in calls])
    print("  reused per call:   ", [u.reused_tokens for u in calls])


# -- a supervisor that hands the question to a math agent with a tool -------------------------
def reply(prompt: str) -> str | None:
    """The supervisor delegates, then answers; the math expert calls add, then reports."""
    system = prompt.split("<|im_end|>", 1)[0]
    if "supervisor" in system:
        done = "The sum is 5." in prompt
        return "The answer is 5." if done else format_call("transfer_to_math_expert", {})
    tool_result = prompt.rsplit("<|im_start|>", 2)[-2].startswith("tool")
    return "The sum is 5." if tool_result else format_call("add", {"a": 2, "b": 3})


math_expert = create_react_agent(
    model(True), [add], name="math_expert", prompt="You are a math expert. Use add."
)
team = create_supervisor(
    [math_expert], model=model(True), prompt="You are a team supervisor."
).compile()
with scripted(connector, reply):
    state = team.invoke({"messages": [("user", "What is 2 plus 3?")]})
for message in state["messages"]:
    report = message.response_metadata.get("avp")
    if report:
        calls = [c["name"] for c in message.tool_calls]
        print(
            f"{message.name}: {calls or message.content} (prefilled "
            f"{report['prefilled_tokens']}, reused {report['reused_tokens']})"
        )
