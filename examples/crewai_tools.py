"""A hierarchical LatentCrew: the manager delegates with crewai's delegation tools, and the
second worker continues the first worker's KV-cache instead of reading it as text.

The built-in model has random weights and never chooses a tool by itself, so its replies are
scripted (the calls a trained model writes); every call still runs on the model, and crewai
runs the manager's loop and the delegations.
"""

import json
import os
import re

for name in ("CREWAI_TRACING_ENABLED", "CREWAI_DISABLE_TELEMETRY", "OTEL_SDK_DISABLED"):
    os.environ.setdefault(name, "true" if name != "CREWAI_TRACING_ENABLED" else "false")

from avp_crewai import AVPLLM, LatentCrew  # noqa: E402
from avp_crewai.llm import NATIVE_TOOLS  # noqa: E402
from crewai import Agent, Process, Task  # noqa: E402

from avp_core import HuggingFaceConnector  # noqa: E402
from avp_core.testing import scripted  # noqa: E402
from avp_core.tools import format_call  # noqa: E402

connector = HuggingFaceConnector.from_pretrained("tiny-qwen2")  # built-in, offline


def delegate(coworker: str) -> str:
    """A delegation in the format this crewai asks for (native call, or ReAct text)."""
    arguments = {
        "task": f"Do the {coworker.lower()} step.",
        "context": "Rivers.",
        "coworker": coworker,
    }
    if NATIVE_TOOLS:
        return format_call("delegate_work_to_coworker", arguments)
    action = "Action: Delegate work to coworker"
    return f"Thought: delegate.\n{action}\nAction Input: {json.dumps(arguments)}"


def final(text: str) -> str:
    return text if NATIVE_TOOLS else f"Thought: done.\nFinal Answer: {text}"


def speaker(prompt: str) -> str:
    return re.findall(r"<\|im_start\|>system\nYou are ([\w ]+)\.", prompt)[-1]


def reply(prompt: str) -> str:
    role = speaker(prompt)
    if role == "Crew Manager":
        # ReAct observations follow the calls in the assistant turns
        turns = [t.split("<|im_end|>")[0] for t in prompt.split("<|im_start|>assistant")[1:]]
        done = prompt.count("<|im_start|>tool") + sum(t.count("Observation:") for t in turns)
        return delegate(("Researcher", "Writer")[done]) if done < 2 else final("All done.")
    return final(f"{role} finished.")


workers = [
    Agent(
        role=role,
        goal=f"Do the {role} work.",
        backstory="Brief.",
        llm=AVPLLM(connector, max_new_tokens=128),
    )
    for role in ("Researcher", "Writer")
]
crew = LatentCrew(
    agents=workers,
    tasks=[Task(description="Research rivers, then write about them.", expected_output="Text.")],
    process=Process.hierarchical,
    manager_llm=AVPLLM(connector, max_new_tokens=128),
)
with scripted(connector, reply) as script, connector.record() as calls:
    result = crew.kickoff()
print("result:", result.raw)
for prompt, usage in zip(script.prompts, calls):
    print(f"{speaker(prompt)}: prefilled {usage.prefilled_tokens}, reused {usage.reused_tokens}")
