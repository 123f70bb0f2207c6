"""Patterns benchmark: each agent with its own system prompt, as graphs, teams and crews are
usually written; text vs exact reuse vs segment reuse, prefilled tokens side by side.

- LangGraph: every node sends its own SystemMessage, then the shared messages;
- AutoGen: stock AssistantAgents, each with its own system_message, in a RoundRobinGroupChat
  on one AVPChatCompletionClient;
- CrewAI: one agent per role (role, goal, backstory), every task quoting ``{document}``.

The first agent reads the document; every later one reads it and the earlier answers.
Exact reuse stops where the system prompts differ; segment reuse finds the document and the
answers in earlier contexts at any position. Before the measured run, each segment setting
runs the pattern on other documents (``--warmup``, default 2), which fills its anchor pool.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from avp_core._args import non_negative_int, positive_int, positive_ints, ratio_list

from .common import crewai_offline, save_rows, table
from .workload import make_document

FRAMEWORK_NAMES = ("langgraph", "autogen", "crewai")
ROLES = (
    "researcher",
    "analyst",
    "critic",
    "editor",
    "fact checker",
    "planner",
    "reviewer",
    "writer",
)


def systems(agents: int) -> list[str]:
    """One distinct system prompt per agent."""
    return [
        f"You are the {ROLES[i % len(ROLES)]} (agent {i + 1} of {agents}). Read the document "
        "and what the team wrote so far, then add your own short contribution."
        for i in range(agents)
    ]


def _langgraph(connector: Any, document: str, agents: int, options: dict[str, Any]) -> None:
    from avp_langgraph import AVPChatModel
    from langchain_core.messages import HumanMessage, SystemMessage
    from langgraph.graph import END, START, MessagesState, StateGraph

    chat = AVPChatModel(connector=connector, **options)
    graph = StateGraph(MessagesState)
    previous = START
    for index, system in enumerate(systems(agents)):

        def node(state: MessagesState, system: str = system) -> dict[str, Any]:
            return {"messages": [chat.invoke([SystemMessage(system), *state["messages"]])]}

        graph.add_node(f"agent{index}", node)
        graph.add_edge(previous, f"agent{index}")
        previous = f"agent{index}"
    graph.add_edge(previous, END)
    graph.compile().invoke({"messages": [HumanMessage(document)]})


def _autogen(connector: Any, document: str, agents: int, options: dict[str, Any]) -> None:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.conditions import MaxMessageTermination
    from autogen_agentchat.teams import RoundRobinGroupChat
    from avp_autogen import AVPChatCompletionClient

    client = AVPChatCompletionClient(connector, **options)
    team = RoundRobinGroupChat(
        [
            AssistantAgent(f"agent{i}", model_client=client, system_message=system)
            for i, system in enumerate(systems(agents))
        ],
        termination_condition=MaxMessageTermination(agents + 1),
    )
    asyncio.run(team.run(task=document))


def _crewai(connector: Any, document: str, agents: int, options: dict[str, Any]) -> None:
    crewai_offline()
    from avp_crewai import AVPLLM
    from crewai import Agent, Crew, Process, Task

    llm = AVPLLM(connector, **options)
    crew_agents: list[Any] = [
        Agent(
            role=ROLES[i % len(ROLES)],
            goal=f"Contribute as agent {i + 1}.",
            backstory=system,
            llm=llm,
        )
        for i, system in enumerate(systems(agents))
    ]
    tasks = [
        Task(
            description="Study this document and add your contribution:\n{document}",
            expected_output="One short paragraph.",
            agent=agent,
        )
        for agent in crew_agents
    ]
    crew = Crew(agents=crew_agents, tasks=tasks, process=Process.sequential, verbose=False)
    crew.kickoff(inputs={"document": document})


def other_documents(tokenizer: Any, tokens: int, count: int) -> list[str]:
    """``count`` documents of about ``tokens`` tokens, other windows of the same corpus."""
    words = make_document(tokenizer, tokens * (count + 2))[0].split()
    size = len(words) // (count + 2)
    return [" ".join(words[(i + 1) * size : (i + 2) * size]) for i in range(count)]


RUNNERS = {"langgraph": _langgraph, "autogen": _autogen, "crewai": _crewai}


def mode_options(framework: str, mode: str, settings: Any, tokens: int) -> dict[str, Any]:
    """Adapter options for ``text``, ``exact`` or a segment setting."""
    options: dict[str, Any] = {"max_new_tokens": tokens, "ignore_eos": True}
    if mode == "text":
        options["latent"] = False
    elif mode == "exact" and framework != "autogen":
        from avp_core.store import ContextStore

        options["context_cache"] = ContextStore()  # the prefix cache each adapter offers
    elif settings is not None:
        options["segment_reuse"] = settings
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avp-suite bench patterns", description=__doc__)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORK_NAMES))
    parser.add_argument("--agents", type=positive_ints, default="4,8")
    parser.add_argument("--model", default="bench-qwen2")
    parser.add_argument("--doc-tokens", type=positive_int, default=800)
    parser.add_argument("--answer-tokens", type=positive_int, default=16)
    parser.add_argument(
        "--recompute",
        type=ratio_list,
        default="0,0.15",
        help="recompute ratios of the segment rows, comma-separated (default 0,0.15)",
    )
    parser.add_argument(
        "--anchors", action="store_true", help="add a row with the anchor pool for each ratio"
    )
    parser.add_argument(
        "--warmup", type=non_negative_int, default=2, help="anchor warm-up runs (default 2)"
    )
    parser.add_argument("--out", help="write results JSON here")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    from avp_core.connectors.hf import HuggingFaceConnector
    from avp_core.reuse import SegmentReuse

    connector = HuggingFaceConnector.from_pretrained(args.model)
    document, doc_tokens = make_document(connector.tokenizer, args.doc_tokens)
    others = other_documents(connector.tokenizer, args.doc_tokens, args.warmup)
    modes: list[tuple[str, Any]] = [("text", None), ("exact", None)]
    for ratio in args.recompute:
        modes += [(f"segments-r{ratio:g}", SegmentReuse(recompute=ratio))]
        if args.anchors:
            modes += [(f"segments-r{ratio:g}+anchors", SegmentReuse(recompute=ratio, anchors=True))]
    rows: list[dict[str, Any]] = []
    for framework in [f.strip() for f in args.frameworks.split(",") if f.strip()]:
        if framework not in RUNNERS:
            build_parser().error(f"unknown framework {framework!r}; choose from {FRAMEWORK_NAMES}")
        for agents in args.agents:
            for mode, settings in modes:
                print(f"{framework}: {agents} agents, {mode} ...", file=sys.stderr, flush=True)
                options = mode_options(framework, mode, settings, args.answer_tokens)
                connector.anchors.clear()
                if settings is not None and settings.anchors:
                    for other in others:
                        RUNNERS[framework](connector, other, agents, options)
                with connector.record() as calls:
                    RUNNERS[framework](connector, document, agents, options)
                rows.append(
                    {
                        "framework": framework,
                        "agents": agents,
                        "mode": mode,
                        "calls": len(calls),
                        "prompt_tokens": sum(u.prompt_tokens for u in calls),
                        "prefilled_tokens": sum(u.prefilled_tokens for u in calls),
                        "exact_reused": sum(u.reused_tokens for u in calls),
                        "approx_reused": sum(u.approx_reused_tokens for u in calls),
                        "recomputed": sum(u.recomputed_tokens for u in calls),
                        "ttft_s": [u.ttft_s for u in calls],
                    }
                )
    _print(rows, args.model, doc_tokens, args.answer_tokens)
    return save_rows("patterns", args, rows)


def _print(rows: list[dict[str, Any]], model: str, doc_tokens: int, answer_tokens: int) -> None:
    print(
        f"model {model}; document {doc_tokens} tokens, answers {answer_tokens} tokens; every "
        "agent has its own system prompt"
    )
    text = {
        (r["framework"], r["agents"]): r["prefilled_tokens"] for r in rows if r["mode"] == "text"
    }
    print(
        table(
            [
                "framework",
                "agents",
                "mode",
                "prompt",
                "prefilled",
                "fewer than text",
                "exact reused",
                "approx reused",
                "recomputed",
            ],
            [
                [
                    r["framework"],
                    r["agents"],
                    r["mode"],
                    r["prompt_tokens"],
                    r["prefilled_tokens"],
                    f"{100 * (1 - r['prefilled_tokens'] / text[r['framework'], r['agents']]):.0f}%",
                    r["exact_reused"],
                    r["approx_reused"],
                    r["recomputed"],
                ]
                for r in rows
            ],
        )
    )


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
