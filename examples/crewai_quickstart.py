"""CrewAI quickstart: a LatentCrew whose second task continues the first task's KV-cache."""

import os

os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")  # offline: no tracing, no telemetry
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

from avp_crewai import AVPLLM, LatentCrew
from crewai import Agent, Task

from avp_core import HuggingFaceConnector

connector = HuggingFaceConnector.from_pretrained("tiny-qwen2")
tasks: list[Task] = []
for role, job in [("Researcher", "List facts about river deltas."), ("Writer", "Summarise them.")]:
    llm = AVPLLM(connector, max_new_tokens=24)
    agent = Agent(role=role, goal=job, backstory=f"You are the {role.lower()}.", llm=llm)
    context = tasks[-1:] or None  # the previous task; in a LatentCrew, also its KV-cache
    tasks.append(
        Task(description=job, expected_output="A short answer.", agent=agent, context=context)
    )
with connector.record() as calls:
    LatentCrew(agents=[task.agent for task in tasks], tasks=tasks).kickoff()
for usage in calls:
    print(usage.reused_tokens, "reused,", usage.prefilled_tokens, "prefilled")
