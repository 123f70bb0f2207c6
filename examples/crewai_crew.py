"""A three-task CrewAI crew, text vs latent handoff, on a local model (offline, < 1 minute).

    python examples/crewai_crew.py [--model tiny-qwen2] [--tokens 24]

The same crew runs twice on one model: as a plain ``Crew`` whose agents read the previous
task's output as "context" text, and as a ``LatentCrew`` whose agents continue the previous
task's KV-cache instead. For each task it prints the prompt tokens, how many were reused
from the previous task's context and how many had to be prefilled. The built-in models have
random weights, so the answers are gibberish; the token counts are what a real model with
the same tokenizer would show (timings: ``python benchmarks/frameworks.py``).
"""

from __future__ import annotations

import argparse
import os

for _name, _value in {
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}.items():
    os.environ.setdefault(_name, _value)  # offline, no telemetry (set before crewai loads)

from avp_crewai import AVPLLM, LatentCrew, context_of  # noqa: E402
from crewai import Agent, Crew, Process, Task  # noqa: E402

from avp_core import HuggingFaceConnector  # noqa: E402

ROLES = [
    ("Researcher", "Find the key facts about the topic.", "Research {topic}: list the key facts."),
    ("Analyst", "Judge which facts matter most.", "Rank the facts above by importance."),
    ("Writer", "Write clear, short summaries.", "Write a three-sentence summary."),
]


def build_crew(connector: HuggingFaceConnector, *, latent: bool, tokens: int) -> Crew:
    """Three agents on one model; each task takes the previous one as context."""
    tasks: list[Task] = []
    for role, goal, description in ROLES:
        agent = Agent(
            role=role,
            goal=goal,
            backstory=f"You are the team's {role.lower()}.",
            llm=AVPLLM(connector, latent=latent, max_new_tokens=tokens),
        )
        context = [tasks[-1]] if tasks else None
        tasks.append(
            Task(
                description=description,
                expected_output="A short answer.",
                agent=agent,
                context=context,
            )
        )
    crew_class = LatentCrew if latent else Crew
    return crew_class(agents=[t.agent for t in tasks], tasks=tasks, process=Process.sequential)


def run(connector: HuggingFaceConnector, *, latent: bool, tokens: int) -> list[str]:
    crew = build_crew(connector, latent=latent, tokens=tokens)
    with connector.record() as calls:
        result = crew.kickoff(inputs={"topic": "river deltas"})
    mode = "latent" if latent else "text"
    for task_output, usage in zip(result.tasks_output, calls):
        print(
            f"{mode:6} {task_output.agent:10} prompt {usage.prompt_tokens:4}  "
            f"reused {usage.reused_tokens:4}  prefilled {usage.prefilled_tokens:4}"
        )
    handle = context_of(result.tasks_output[-1])
    if handle is not None:
        print(
            f"       the last task's output carries a context of {handle.seq_len} positions "
            f"({handle.nbytes / 1e6:.2f} MB, {handle.identity.short()})"
        )
    return [o.raw for o in result.tasks_output]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-qwen2", help="built-in name or checkpoint")
    parser.add_argument("--tokens", type=int, default=24, help="tokens per answer")
    args = parser.parse_args()
    connector = HuggingFaceConnector.from_pretrained(args.model)
    print(f"{connector}: one agent per task, {args.tokens}-token greedy answers\n")
    text = run(connector, latent=False, tokens=args.tokens)
    print()
    latent = run(connector, latent=True, tokens=args.tokens)
    print(f"\nfirst task identical in both modes: {text[0] == latent[0]}")


if __name__ == "__main__":
    main()
