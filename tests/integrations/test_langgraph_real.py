"""LangGraph on the real model (SmolLM2-135M-Instruct): the exact latent path equals text."""

from __future__ import annotations

from typing import Any

import torch
from avp_langgraph import AVPChatModel, context_of, to_chat
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph

DOCUMENT = (
    "The Brenmoor ferry leaves the north pier at seven. It carries bicycles but not cars. "
    "The crossing takes forty minutes, and the cafe on board sells tea and almond cake."
)
ROLES = (
    "Reader: what does the document say about the ferry? Answer in one sentence.",
    "Checker: is anything in the reader's answer missing from the document?",
    "Writer: give a one-line travel tip based on the document.",
)


def graph(model: AVPChatModel) -> Any:
    built = StateGraph(MessagesState)
    previous = START
    for index, instruction in enumerate(ROLES):

        def node(state: MessagesState, instruction: str = instruction) -> dict:
            turn = HumanMessage(instruction)
            return {"messages": [turn, model.invoke([*state["messages"], turn])]}

        built.add_node(f"agent{index}", node)
        built.add_edge(previous, f"agent{index}")
        previous = f"agent{index}"
    built.add_edge(previous, END)
    return built.compile()


START_STATE = {
    "messages": [SystemMessage("You are a careful team."), HumanMessage(f"Document:\n{DOCUMENT}")]
}


def test_exact_latent_graph_gives_the_text_graphs_tokens_and_stops_at_end_of_turn(smollm2):
    text = graph(AVPChatModel(connector=smollm2, latent=False, max_new_tokens=96))
    latent = graph(AVPChatModel(connector=smollm2, max_new_tokens=96))
    text_state, latent_state = text.invoke(START_STATE), latent.invoke(START_STATE)
    text_replies = [m for m in text_state["messages"] if isinstance(m, AIMessage)]
    latent_replies = [m for m in latent_state["messages"] if isinstance(m, AIMessage)]
    assert [m.content for m in latent_replies] == [m.content for m in text_replies]
    assert all(m.content.strip() for m in text_replies)  # readable answers, not empty
    for a, b in zip(text_replies, latent_replies):
        assert context_of(a).sequence == context_of(b).sequence  # same prompt and answer ids
        assert a.response_metadata["finish_reason"] == b.response_metadata["finish_reason"]
        assert b.response_metadata["finish_reason"] == "stop"

    def reused(message: AIMessage) -> int:
        return message.usage_metadata["input_token_details"]["cache_read"]

    assert all(reused(m) > 0 for m in latent_replies[1:])
    assert all(reused(m) == 0 for m in text_replies)

    # the last agent's prompt as the graph built it: same first-token logits with and without
    # the previous agent's context
    prompt = to_chat(latent_state["messages"][:-1])
    previous = context_of(latent_replies[-2])
    dense = smollm2.generate(prompt, max_new_tokens=1, keep_logits=True)
    reused = smollm2.generate(prompt, max_new_tokens=1, context=previous, keep_logits=True)
    assert reused.usage.reused_tokens > dense.usage.prompt_tokens // 2
    assert torch.allclose(reused.first_logits, dense.first_logits, atol=1e-4, rtol=0)


def test_a_react_agents_free_answer_after_a_tool_equals_text(smollm2):
    """The tool call is scripted (the model is too small to choose it); the answer after the
    tool's result is the model's own, greedy, on both paths: the latent path continues the
    call's KV and must write the same tokens."""
    import warnings

    from langchain_core.tools import tool

    from avp_core.testing import scripted
    from avp_core.tools import format_call

    warnings.filterwarnings("ignore", message="create_react_agent has been moved")
    from langgraph.prebuilt import create_react_agent

    @tool
    def ferry_time(pier: str) -> str:
        """When the ferry leaves a pier."""
        return f"The ferry leaves the {pier} pier at seven."

    def run(latent: bool) -> tuple[list[Any], list[Any]]:
        chat = AVPChatModel(connector=smollm2, latent=latent, max_new_tokens=48)
        agent = create_react_agent(chat, [ferry_time], prompt="Answer with the tools' help.")
        script = [format_call("ferry_time", {"pier": "north"})]
        with scripted(smollm2, script), smollm2.record() as calls:
            state = agent.invoke({"messages": [HumanMessage("When does the ferry leave?")]})
        return state["messages"], calls

    (text, text_calls), (latent, latent_calls) = run(False), run(True)
    assert isinstance(latent[2], type(text[2])) and latent[2].content == text[2].content
    assert latent[-1].content == text[-1].content and latent[-1].content.strip()
    assert context_of(latent[-1]).sequence == context_of(text[-1]).sequence
    first, second = latent_calls
    assert second.reused_tokens == first.prompt_tokens + first.completion_tokens
    assert [u.reused_tokens for u in text_calls] == [0, 0]
