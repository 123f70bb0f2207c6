"""Tool-loop benchmark: a ReAct agent that makes 5 model calls (4 tool calls, then the
answer), text vs latent, in each framework's own loop.

- LangGraph: ``create_react_agent`` with an :class:`~avp_langgraph.AVPChatModel`;
- AutoGen: ``AssistantAgent(tools=..., max_tool_iterations=5)`` on an AVPChatCompletionClient;
- CrewAI: one agent with a tool in a one-task crew (native function calling).

The model's replies are scripted (:func:`avp_core.testing.scripted`: the calls a model would
write, in the format its template asks for), because the models here do not choose tools
reliably; every call still prefills and decodes on the model. Text prefills the whole
conversation at every call; latent continues the previous call's KV, so it prefills only the
tool's result and the next turn's header. Runs are interleaved (text, latent, text, ...);
times are medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from avp_core._args import positive_int
from avp_core.testing import scripted
from avp_core.tools import format_call

from .common import crewai_offline, machine, save_rows, table
from .workload import make_document

FRAMEWORK_NAMES = ("langgraph", "autogen", "crewai")
SYSTEM = "You are a careful accountant. Use the add tool for every sum; never add in your head."
STEPS = ((12, 30), (42, 8), (50, 25), (75, 5))


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def replies() -> list[str]:
    """The 5 replies: four calls to ``add`` (each on the last result), then the answer."""
    calls = [format_call("add", {"a": a, "b": b}) for a, b in STEPS]
    return [*calls, f"The total is {sum(STEPS[-1])}."]


def _langgraph(connector: Any, task: str, latent: bool, tokens: int) -> None:
    import warnings

    from avp_langgraph import AVPChatModel
    from langchain_core.tools import tool

    with warnings.catch_warnings():  # deprecated in langgraph 1.x for langchain's agents
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

    chat = AVPChatModel(connector=connector, latent=latent, max_new_tokens=tokens)
    agent = create_react_agent(chat, [tool(add)], prompt=SYSTEM)
    agent.invoke({"messages": [("user", task)]}, {"recursion_limit": 20})


def _autogen(connector: Any, task: str, latent: bool, tokens: int) -> None:
    from autogen_agentchat.agents import AssistantAgent
    from avp_autogen import AVPChatCompletionClient

    client = AVPChatCompletionClient(connector, latent=latent, max_new_tokens=tokens)
    agent = AssistantAgent(
        "accountant", model_client=client, tools=[add], system_message=SYSTEM, max_tool_iterations=5
    )
    asyncio.run(agent.run(task=task))


def _crewai(connector: Any, task: str, latent: bool, tokens: int) -> None:
    crewai_offline()
    from avp_crewai import AVPLLM
    from crewai import Agent, Crew, Task
    from crewai.tools import tool

    llm = AVPLLM(connector, latent=latent, max_new_tokens=tokens)
    agent = Agent(
        role="accountant",
        goal="Add the figures.",
        backstory=SYSTEM,
        llm=llm,
        tools=[tool("add")(add)],
        max_iter=8,
    )
    job = Task(description=task, expected_output="The total.", agent=agent)
    Crew(agents=[agent], tasks=[job], verbose=False).kickoff()


RUNNERS = {"langgraph": _langgraph, "autogen": _autogen, "crewai": _crewai}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avp-suite bench tools", description=__doc__)
    parser.add_argument(
        "--frameworks", default=",".join(FRAMEWORK_NAMES), help="comma-separated (default all)"
    )
    parser.add_argument("--model", default="smollm2-135m", help="default: the real SmolLM2")
    parser.add_argument(
        "--doc-tokens", type=positive_int, default=400, help="report in the task (default 400)"
    )
    parser.add_argument("--runs", type=positive_int, default=3, help="interleaved runs (default 3)")
    parser.add_argument("--out", help="write results JSON (and a chart beside it) here")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for framework in frameworks:
        if framework not in RUNNERS:
            parser.error(f"unknown framework {framework!r}; choose from {FRAMEWORK_NAMES}")
    from avp_core.connectors.hf import HuggingFaceConnector

    connector = HuggingFaceConnector.from_pretrained(args.model)
    document, doc_tokens = make_document(connector.tokenizer, args.doc_tokens)
    task = f"Report:\n{document}\n\nAdd up the figures {STEPS} step by step with the tool."
    tokens = max(len(connector.tokenizer(r)["input_ids"]) for r in replies()) + 4
    rows: list[dict[str, Any]] = []
    for framework in frameworks:
        seen: dict[str, dict[str, Any]] = {}
        with scripted(connector, replies()):  # warm-up: imports and first-call costs
            RUNNERS[framework](connector, task, True, tokens)
        for run in range(args.runs):
            for mode in ("text", "latent"):
                print(
                    f"{framework}: run {run + 1}/{args.runs}, {mode} ...",
                    file=sys.stderr,
                    flush=True,
                )
                start = time.perf_counter()
                with scripted(connector, replies()), connector.record() as calls:
                    RUNNERS[framework](connector, task, mode == "latent", tokens)
                wall = time.perf_counter() - start
                row = seen.setdefault(mode, {"framework": framework, "mode": mode, "walls": []})
                row["walls"].append(wall)
                row.update(
                    calls=len(calls),
                    prompt_tokens=sum(u.prompt_tokens for u in calls),
                    prefilled_tokens=sum(u.prefilled_tokens for u in calls),
                    reused_tokens=sum(u.reused_tokens for u in calls),
                    per_call_prefilled=[u.prefilled_tokens for u in calls],
                    ttft_s=statistics.median(u.ttft_s for u in calls),
                )
        for row in seen.values():
            row["wall_s"] = statistics.median(row["walls"])
            rows.append(row)
    _print(rows, args.model, doc_tokens)
    return save_rows("tools", args, rows)


def _print(rows: list[dict[str, Any]], model: str, doc_tokens: int) -> None:
    print(f"model {model}; a {doc_tokens}-token report; 5 model calls per loop (4 tool calls)")
    text = {r["framework"]: r["prefilled_tokens"] for r in rows if r["mode"] == "text"}
    print(
        table(
            [
                "framework",
                "mode",
                "calls",
                "prompt",
                "prefilled",
                "text/latent",
                "reused",
                "median TTFT ms",
                "median loop s",
            ],
            [
                [
                    r["framework"],
                    r["mode"],
                    r["calls"],
                    r["prompt_tokens"],
                    r["prefilled_tokens"],
                    f"{text[r['framework']] / max(r['prefilled_tokens'], 1):.1f}x",
                    r["reused_tokens"],
                    round(r["ttft_s"] * 1e3, 1),
                    round(r["wall_s"], 2),
                ]
                for r in rows
            ],
        )
    )
    print(f"machine: {machine()}")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
