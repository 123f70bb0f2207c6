"""A LangGraph chain of agents on one self-hosted model: text baseline vs AVP latent reuse.

Four agents read the same ~1,000-token document in turn; each appends its role as a user turn
and answers, seeing everything before. The same graph runs three times on one connector:
``latent=False`` (every agent prefills the whole conversation), ``latent=True`` (each agent
reuses the KV its predecessor computed), and ``latent=True`` again with the bounded
ContextStore that the first latent run filled (a warm prefix cache). The answers are the same
in all three; the script prints what each agent reused and prefilled.

    python examples/langgraph_chain.py            # offline, built-in tiny-qwen2, a few seconds
    python examples/langgraph_chain.py --model bench-qwen2
"""

from __future__ import annotations

import argparse

from avp_langgraph import AVPChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from avp_core import ContextStore, HuggingFaceConnector
from avp_suite.bench.workload import ChainWorkload


def build_graph(model: AVPChatModel, roles: list[tuple[str, str]], **compile_options):
    """START -> one node per role -> END, over MessagesState."""
    graph = StateGraph(MessagesState)
    previous = START
    for name, instruction in roles:

        def agent(state: MessagesState, instruction: str = instruction) -> dict:
            turn = HumanMessage(instruction)  # the role comes last: the shared prefix first
            return {"messages": [turn, model.invoke([*state["messages"], turn])]}

        graph.add_node(name, agent)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph.compile(**compile_options)


def run(model: AVPChatModel, roles: list[tuple[str, str]], task: str) -> list[AIMessage]:
    start = {"messages": [SystemMessage("You are a team of specialists."), HumanMessage(task)]}
    state = build_graph(model, roles).invoke(start)
    return [m for m in state["messages"] if isinstance(m, AIMessage)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-qwen2")
    parser.add_argument("--agents", type=int, default=4)
    args = parser.parse_args()

    connector = HuggingFaceConnector.from_pretrained(args.model)
    workload = ChainWorkload.for_tokenizer(connector.tokenizer, agents=args.agents)
    roles = [workload.role(i) for i in range(args.agents)]

    def chat(**kwargs) -> AVPChatModel:
        return AVPChatModel(connector=connector, max_new_tokens=32, ignore_eos=True, **kwargs)

    text = run(chat(latent=False), roles, workload.task)  # the text baseline
    cache = ContextStore(max_bytes=256 << 20)  # bounded; empty, so the first run is cold
    latent = run(chat(context_cache=cache), roles, workload.task)  # latent=True, "shared"
    warm = run(chat(context_cache=cache), roles, workload.task)  # the same question again

    assert [m.content for m in latent] == [m.content for m in text] == [m.content for m in warm]
    print(f"{args.model}, {args.agents} agents, same answers in all three runs\n")
    print(
        f"{'agent':<12}{'text prefill':>14}{'latent reused/prefill':>24}{'warm reused/prefill':>22}"
    )
    totals = [0, 0, 0]
    for (name, _), t, lat, w in zip(roles, text, latent, warm):
        t, lat, w = (m.response_metadata["avp"] for m in (t, lat, w))
        totals = [a + b["prefilled_tokens"] for a, b in zip(totals, (t, lat, w))]
        print(
            f"{name:<12}{t['prefilled_tokens']:>14}"
            f"{lat['reused_tokens']:>16}/{lat['prefilled_tokens']:<7}"
            f"{w['reused_tokens']:>14}/{w['prefilled_tokens']:<7}"
        )
    text_total, latent_total, warm_total = totals
    print(
        f"\nprefilled tokens: text {text_total}, latent {latent_total} "
        f"({100 * (1 - latent_total / text_total):.0f}% fewer), warm {warm_total} "
        f"({100 * (1 - warm_total / text_total):.0f}% fewer)"
    )


if __name__ == "__main__":
    main()
