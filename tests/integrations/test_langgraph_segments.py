"""Segment reuse in LangGraph: every node sends its own SystemMessage (the usual pattern)."""

from __future__ import annotations

from typing import Any

import pytest
from avp_langgraph import AVPChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from avp_core import ContextStore
from avp_core.reuse import SegmentReuse
from avp_suite.bench.workload import make_document

AGENTS = (
    ("researcher", "You are the researcher. You list the facts that matter in the document."),
    ("critic", "You are the critic. You point out what the researcher missed."),
    ("writer", "You are the writer. You turn the notes into one clear paragraph."),
)


def own_prompt_graph(models: list[AVPChatModel]) -> Any:
    """Each node prepends its own system prompt to the shared conversation."""
    graph = StateGraph(MessagesState)
    previous = START
    for (name, system), chat in zip(AGENTS, models):

        def node(state: MessagesState, chat=chat, system=system) -> dict:
            return {"messages": [chat.invoke([SystemMessage(system), *state["messages"]])]}

        graph.add_node(name, node)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph.compile()


def run(models: list[AVPChatModel], document: str) -> list[AIMessage]:
    state = own_prompt_graph(models).invoke({"messages": [HumanMessage(document)]})
    return [m for m in state["messages"] if isinstance(m, AIMessage)]


def report(message: AIMessage) -> dict:
    return message.response_metadata["avp"]


@pytest.fixture(scope="module")
def document(qwen) -> str:
    text, _ = make_document(qwen.tokenizer, 300)
    return f"Document:\n{text}"


def chats(connector: Any, n: int = 3, **kwargs: Any) -> list[AVPChatModel]:
    return [AVPChatModel(connector=connector, max_new_tokens=12, **kwargs) for _ in range(n)]


def test_segment_reuse_prefills_far_less_than_text_and_exact(qwen, document):
    text = run(chats(qwen, latent=False), document)
    exact = run(chats(qwen), document)
    segments = run(chats(qwen, segment_reuse=SegmentReuse(recompute=0.0, anchors=False)), document)
    prefilled = {
        name: sum(report(m)["prefilled_tokens"] for m in replies)
        for name, replies in (("text", text), ("exact", exact), ("segments", segments))
    }
    assert prefilled["exact"] > 0.9 * prefilled["text"]  # the system prompts differ
    assert prefilled["segments"] < 0.5 * prefilled["text"]
    for reply in segments[1:]:
        assert report(reply)["mode"] == "segments"
        assert report(reply)["approx_reused_tokens"] > 300
        assert report(reply)["recomputed_tokens"] == 0
    assert report(segments[0])["approx_reused_tokens"] == 0  # nothing computed before it


def test_recompute_one_is_dense_prefill_through_the_graph(qwen, document):
    text = run(chats(qwen, latent=False), document)
    full = run(chats(qwen, segment_reuse=SegmentReuse(recompute=1.0, anchors=False)), document)
    assert [m.content for m in full] == [m.content for m in text]
    assert all(report(m)["approx_reused_tokens"] == 0 for m in full)
    assert report(full[-1])["recomputed_tokens"] > 300


def test_segments_come_from_the_store_across_graph_runs(qwen, document):
    store = ContextStore()
    settings = SegmentReuse(anchors=False)
    first = run(chats(qwen, context_cache=store, segment_reuse=settings), document)
    assert len(store) == 3 and report(first[0])["approx_reused_tokens"] == 0
    # a new run whose messages carry no handles: the store's index finds the document
    again = run(chats(qwen, 1, context_cache=store, segment_reuse=settings), document)
    assert report(again[0])["reused_tokens"] > 300  # the researcher's own prompt: exact


def test_another_model_is_never_mixed_in(qwen, llama, document):
    models = [*chats(qwen, 1), *chats(llama, 2, segment_reuse=SegmentReuse(anchors=False))]
    text = run([*chats(qwen, 1), *chats(llama, 2, latent=False)], document)
    mixed = run(models, document)
    assert report(mixed[1])["approx_reused_tokens"] == 0  # qwen's KV never reaches llama
    assert [m.content for m in mixed[:2]] == [m.content for m in text[:2]]
    assert report(mixed[2])["approx_reused_tokens"] > 0  # llama reuses llama's own segment


def test_anchors_start_dense_then_reuse_with_offsets(qwen):
    from avp_core.connectors.hf import HuggingFaceConnector

    connector = HuggingFaceConnector.from_pretrained("tiny-qwen2")  # its own anchor pool
    # anchors on; threshold 1 accepts any match (the tiny random model's anchors are all
    # about as far from a new run, which the default threshold rightly refuses)
    settings = SegmentReuse(recompute=0.0, anchors=True, anchor_threshold=1.0)
    words = make_document(qwen.tokenizer, 1500)[0].split()
    documents = [" ".join(words[i * 200 : i * 200 + 260]) for i in range(4)]
    for document in documents[:2]:  # a cold pool computes densely and records anchors
        replies = run(chats(connector, segment_reuse=settings), document)
        assert all(report(m)["approx_reused_tokens"] == 0 for m in replies)
        assert "no close enough anchor" in report(replies[1])["notes"][0]
    assert len(connector.anchors) == 4  # two placements (critic, writer), two runs each
    replies = run(chats(connector, segment_reuse=settings), documents[3][:-200])
    assert all(report(m)["approx_reused_tokens"] > 300 for m in replies[1:])
    assert all(not report(m)["notes"] for m in replies)


def test_switch_accepts_true_and_rejects_nonsense(qwen):
    assert AVPChatModel(connector=qwen, segment_reuse=True).segment_reuse == SegmentReuse()
    assert AVPChatModel(connector=qwen, segment_reuse=False).segment_reuse is None
    with pytest.raises(ValueError, match="recompute must be in"):
        SegmentReuse(recompute=1.5)
    with pytest.raises(ValueError, match="segment_reuse must be"):
        AVPChatModel(connector=qwen, segment_reuse="yes")
