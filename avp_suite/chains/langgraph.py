"""The shared N-agent chain workload as a LangGraph graph (benchmarks and the demo).

One ``StateGraph`` over ``MessagesState``: a shared system message and the task (document
and question) open the conversation; agent ``i`` appends its role instruction as a user turn
and answers it, seeing everything before. The common prefix comes first and each agent's
prompt extends the previous agent's whole context, which is what the shared layout reuses.
"""

from __future__ import annotations

from typing import Any, Literal

from avp_langgraph.chat_model import AVPChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from avp_core.store import ContextStore
from avp_suite.bench.workload import ChainWorkload

LATENT_PATH = "exact: the same prompts, KV reused for the common prefix"
"""How the latent run reuses KV (the demo prints it beside the answers)."""

SYSTEM = "You are one of several specialists working through the same document in turn."


def build_chain(model: AVPChatModel, workload: ChainWorkload) -> Any:
    """A compiled graph: START -> agent 1 -> ... -> agent N -> END."""
    graph = StateGraph(MessagesState)
    previous = START
    for index in range(workload.agents):
        name, instruction = workload.role(index)

        def agent(state: MessagesState, name: str = name, instruction: str = instruction) -> Any:
            turn = HumanMessage(instruction)
            reply = model.invoke([*state["messages"], turn])
            reply.name = name
            return {"messages": [turn, reply]}

        graph.add_node(name, agent)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph.compile()


def initial_state(workload: ChainWorkload) -> dict[str, Any]:
    return {"messages": [SystemMessage(SYSTEM), HumanMessage(workload.task)]}


def run_chain(
    connector: Any,
    workload: ChainWorkload,
    *,
    latent: bool,
    cache: ContextStore | None = None,
    layout: Literal["shared", "handoff"] = "shared",
) -> list[str]:
    """Run the chain once; each agent's answer text, in order.

    ``latent=False`` is the text baseline on the same connector. ``cache`` (latent only)
    keeps contexts across runs, so a second run over the same document starts warm.
    """
    model = AVPChatModel(
        connector=connector,
        latent=latent,
        layout=layout,
        max_new_tokens=workload.answer_tokens,
        ignore_eos=workload.ignore_eos,
        context_cache=cache if latent else None,
    )
    state = build_chain(model, workload).invoke(initial_state(workload))
    return [str(m.content) for m in state["messages"] if isinstance(m, AIMessage)]
