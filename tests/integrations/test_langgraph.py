"""LangChain / LangGraph adapter: real graphs on the built-in offline models, no mocks.

LangChain's conformance suite for AVPChatModel is in test_langgraph_standard.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from avp_langgraph import (
    AVPChatModel,
    AVPMessagesState,
    AVPSerializer,
    context_of,
    merge_contexts,
    to_chat,
)
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
    messages_from_dict,
    messages_to_dict,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from avp_core import AVPContext, ContextStore
from avp_core.errors import DecodeError
from avp_suite.bench.workload import ChainWorkload, make_document
from avp_suite.chains import langgraph as lg_chain

ROLES = (
    ("planner", "You are the planner. Give the plan."),
    ("critic", "You are the critic. Find the weakest step."),
    ("editor", "You are the editor. Rewrite the plan."),
)
TOKENS = 12


@pytest.fixture(scope="module")
def task(qwen) -> str:
    document, _ = make_document(qwen.tokenizer, 160)
    return f"Document:\n{document}\n\nQuestion: what should we do first?"


def chain_graph(models: list[AVPChatModel]) -> Any:
    """Three agents over MessagesState; each appends its role turn and answers."""
    graph = StateGraph(MessagesState)
    previous = START
    for (name, instruction), model in zip(ROLES, models):

        def node(state: MessagesState, model=model, instruction=instruction) -> dict:
            turn = HumanMessage(instruction)
            return {"messages": [turn, model.invoke([*state["messages"], turn])]}

        graph.add_node(name, node)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph.compile()


def start(task: str) -> dict:
    return {"messages": [SystemMessage("You are a careful team."), HumanMessage(task)]}


def replies(state: dict) -> list[AIMessage]:
    return [m for m in state["messages"] if isinstance(m, AIMessage)]


def avp(message: AIMessage) -> dict:
    return message.response_metadata["avp"]


def model(connector, **kwargs) -> AVPChatModel:
    return AVPChatModel(connector=connector, **{"max_new_tokens": TOKENS, **kwargs})


# -- the chat model ---------------------------------------------------------------------------


def test_renders_every_role_with_the_chat_template(qwen):
    messages = [
        SystemMessage("Be brief."),
        HumanMessage([{"type": "text", "text": "Add 2 and 3."}]),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}]),
        ToolMessage("5", tool_call_id="c1"),
        HumanMessage("And now?"),
    ]
    turns = to_chat(messages)
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "tool", "user"]
    assert turns[1]["content"] == "Add 2 and 3."
    assert turns[2]["tool_calls"][0]["function"] == {"name": "add", "arguments": {"a": 2, "b": 3}}
    reply = model(qwen).invoke(messages)
    assert reply.usage_metadata["input_tokens"] == qwen.count_tokens(turns)
    rendered = qwen.tokenizer.decode(qwen.prompt_ids(turns))
    assert "<|im_start|>tool\n5<|im_end|>" in rendered and "User:" not in rendered
    with pytest.raises(ValueError, match="text only"):
        model(qwen).invoke([HumanMessage([{"type": "image", "url": "http://x/y.png"}])])


def test_invoke_stream_callbacks_usage_and_stop(qwen):
    chat = model(qwen, max_new_tokens=16)
    reply = chat.invoke("Name three rivers.")
    assert isinstance(reply.content, str) and reply.content
    assert reply.usage_metadata == {
        "input_tokens": avp(reply)["prompt_tokens"],
        "output_tokens": 16,
        "total_tokens": avp(reply)["prompt_tokens"] + 16,
        "input_token_details": {"cache_read": 0},
    }
    assert reply.response_metadata["model_name"] == "tiny-qwen2"
    assert context_of(reply).text == reply.content

    chunks = list(chat.stream("Name three rivers."))
    assert len(chunks) > 3 and "".join(c.content for c in chunks) == reply.content
    assert avp(chunks[-1])["context_id"] and chunks[-1].usage_metadata["output_tokens"] == 16

    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            self.tokens.append(token)

    handler = Tokens()
    again = chat.invoke("Name three rivers.", config={"callbacks": [handler]})
    assert len(handler.tokens) > 3 and "".join(handler.tokens) == again.content == reply.content

    word = reply.content.split()[2]
    cut = chat.invoke("Name three rivers.", stop=[word])
    assert cut.content == reply.content[: reply.content.index(word)]
    assert cut.response_metadata["finish_reason"] == "stop"
    batch = chat.batch(["Name three rivers.", "Hi"])
    assert len(batch) == 2 and batch[0].content == reply.content


def test_ainvoke_and_astream_do_not_block_the_event_loop(qwen, loop_gate):
    chat = model(qwen, max_new_tokens=96)

    async def collect() -> list[str]:
        return [c.content async for c in chat.astream("Tell a long story.")]

    async def main() -> tuple[int, str, list[str]]:
        invoke_gate = loop_gate(qwen)
        reply = asyncio.ensure_future(chat.ainvoke("Tell a long story."))
        await invoke_gate.open_after(reply)
        text = (await reply).content
        assert invoke_gate.passed(threading.get_ident())
        invoke_gate.close()
        stream_gate = loop_gate(qwen)
        chunks = asyncio.ensure_future(collect())
        await stream_gate.open_after(chunks)
        streamed = await chunks
        assert stream_gate.passed(threading.get_ident())
        stream_gate.close()
        return text, streamed

    text, chunks = asyncio.run(main())
    assert "".join(chunks) == text == chat.invoke("Tell a long story.").content


def test_from_pretrained_splits_fields_from_loader_options():
    chat = AVPChatModel.from_pretrained(
        "tiny-qwen2", max_tokens=3, layout="handoff", dtype="float32"
    )
    assert (chat.max_new_tokens, chat.layout, chat.model_name) == (3, "handoff", "tiny-qwen2")
    assert chat.invoke("Hi").usage_metadata["output_tokens"] == 3


# -- graphs -----------------------------------------------------------------------------------


def test_shared_layout_chain_equals_text_with_far_fewer_prefilled_tokens(qwen, task):
    with qwen.record() as text_calls:
        text = chain_graph([model(qwen, latent=False)] * 3).invoke(start(task))
    with qwen.record() as latent_calls:
        latent = chain_graph([model(qwen)] * 3).invoke(start(task))
    assert [m.content for m in latent["messages"]] == [m.content for m in text["messages"]]
    assert all(avp(m)["mode"] == "text" and avp(m)["reused_tokens"] == 0 for m in replies(text))
    text_prefill = sum(u.prefilled_tokens for u in text_calls)
    latent_prefill = sum(u.prefilled_tokens for u in latent_calls)
    assert latent_prefill < 0.5 * text_prefill
    first, *later = replies(latent)
    for previous, reply in zip([first, *later], later):
        assert avp(reply)["mode"] == "latent"
        assert avp(reply)["reused_context_id"] == avp(previous)["context_id"]
        assert avp(reply)["reused_tokens"] > context_of(previous).seq_len - TOKENS


def test_handoff_layout_reuses_each_predecessors_whole_context(qwen, task):
    state = chain_graph([model(qwen, layout="handoff")] * 3).invoke(start(task))
    first, *later = replies(state)
    for previous, reply in zip([first, *later], later):
        assert avp(reply)["layout"] == "handoff"
        assert avp(reply)["reused_tokens"] == context_of(previous).seq_len
        # the new turn plus the team's system message, sent again after the context
        assert avp(reply)["prefilled_tokens"] < 45


@pytest.mark.parametrize("layout", ["shared", "handoff"])
def test_mixed_models_fall_back_to_text_for_the_other_model(qwen, other, task, layout):
    graph = chain_graph([model(qwen, layout=layout), model(other), model(qwen, layout=layout)])
    first, foreign, third = replies(graph.invoke(start(task)))
    assert avp(foreign)["mode"] == "text" and avp(foreign)["reused_tokens"] == 0
    assert avp(foreign)["handshake_mode"] == "json"
    assert "architectures differ" in avp(foreign)["handshake"]
    assert avp(third)["mode"] == "latent" and avp(third)["reused_tokens"] > 0
    assert avp(third)["reused_context_id"] == avp(first)["context_id"]
    if layout == "handoff":
        assert avp(third)["reused_tokens"] == context_of(first).seq_len


def test_streamed_graph_yields_tokens_and_keeps_reusing(qwen, task):
    graph = chain_graph([model(qwen)] * 3)
    with qwen.record() as calls:
        pieces = [
            (meta["langgraph_node"], chunk.content)
            for chunk, meta in graph.stream(start(task), stream_mode="messages")
            if isinstance(chunk, AIMessageChunk)
        ]
    assert {node for node, _ in pieces} == {name for name, _ in ROLES}
    assert len(pieces) > 3 * 5
    assert [u.reused_tokens > 0 for u in calls] == [False, True, True]


def test_parallel_runs_through_one_connector_equal_serial_runs(qwen):
    graph = chain_graph([model(qwen, max_new_tokens=8)] * 3)
    cities = ["Lisbon", "Oslo", "Rome", "Quito", "Hanoi", "Lima", "Cairo", "Perth"]
    inputs = [start(f"Plan {i + 2} days in {city} for a family.") for i, city in enumerate(cities)]

    def contents(state: dict) -> list[str]:
        return [m.content for m in replies(state)]

    serial = [contents(graph.invoke(s)) for s in inputs]
    with ThreadPoolExecutor(8) as pool:
        threaded = [contents(s) for s in pool.map(graph.invoke, inputs)]

    async def gather() -> list[dict]:
        return await asyncio.gather(*(graph.ainvoke(s) for s in inputs))

    concurrent = [contents(s) for s in asyncio.run(gather())]
    assert threaded == serial and concurrent == serial
    assert len({tuple(s) for s in serial}) > 1


def test_chain_module_matches_text_and_a_warm_cache_prefills_less(qwen):
    workload = ChainWorkload.for_tokenizer(
        qwen.tokenizer, agents=3, doc_tokens=200, answer_tokens=8
    )
    with qwen.record() as text_calls:
        text = lg_chain.run_chain(qwen, workload, latent=False)
    with qwen.record() as cold_calls:
        cold = lg_chain.run_chain(qwen, workload, latent=True)
    store = ContextStore(max_bytes=64 << 20)
    lg_chain.run_chain(qwen, workload, latent=True, cache=store)
    with qwen.record() as warm_calls:
        warm = lg_chain.run_chain(qwen, workload, latent=True, cache=store)
    assert len(text) == 3 and cold == text and warm == text
    prefilled = [sum(u.prefilled_tokens for u in c) for c in (text_calls, cold_calls, warm_calls)]
    assert prefilled[2] < prefilled[1] < 0.5 * prefilled[0]
    assert warm_calls[0].reused_tokens > 200


# -- carriers, state, serialization -----------------------------------------------------------


def test_messages_with_handles_serialize_compactly_and_never_leak(qwen):
    chat = model(qwen)
    reply = chat.invoke("Plan a trip.")
    context = context_of(reply)
    assert isinstance(context, AVPContext) and context.nbytes > 5000
    for text in (
        json.dumps(dumpd(reply)),
        reply.model_dump_json(),
        json.dumps(messages_to_dict([reply])),
    ):
        assert len(text) < 1500 and "tensor" not in text and context.context_id in text
    assert json.loads(reply.model_dump_json())["response_metadata"]["avp"]["context"] == {
        "model": qwen.identity.short(),
        "seq_len": context.seq_len,
        "tokens": context.seq_len,
        "latent_steps": 0,
        "bytes": context.nbytes,
    }
    assert "avp" not in json.dumps(convert_to_openai_messages([reply]))
    assert context_of(reply.model_copy()) is context and context_of(copy.deepcopy(reply)) is context
    assert len(pickle.dumps(reply)) < 3000 and context_of(pickle.loads(pickle.dumps(reply))) is None

    # Rebuilt from dicts, a message keeps its id; a model with a cache finds the context again.
    rebuilt = messages_from_dict(messages_to_dict([reply]))[0]
    assert context_of(rebuilt) is None
    cached = model(qwen, context_cache=ContextStore())
    first = cached.invoke("Plan a trip.")
    rebuilt = messages_from_dict(messages_to_dict([first]))[0]
    follow = cached.invoke([HumanMessage("Plan a trip."), rebuilt, HumanMessage("Shorter.")])
    assert avp(follow)["reused_context_id"] == avp(first)["context_id"]


def test_contexts_channel_passes_contexts_explicitly(qwen, task):
    chat = model(qwen, layout="handoff")
    a, b = (context_of(chat.invoke(text)) for text in ("One.", "Two."))
    assert merge_contexts({"a": a, "b": b}, {"b": None, "c": a}) == {"a": a, "c": a}
    with pytest.raises(TypeError, match="AVPContext"):
        merge_contexts({}, {"a": "not a context"})  # type: ignore[dict-item]

    def writer(state: AVPMessagesState) -> dict:
        reply = chat.invoke(state["messages"])
        return {"messages": [reply], "contexts": {"writer": context_of(reply)}}

    def reviewer(state: AVPMessagesState) -> dict:
        # The messages arrive as plain text (say, trimmed and rebuilt): no handles on them.
        plain = [type(m)(content=m.content) for m in state["messages"]]
        turn = HumanMessage("Review it.")
        reply = chat.invoke([*plain, turn], avp_context=state["contexts"]["writer"])
        return {"messages": [turn, reply], "contexts": {"reviewer": context_of(reply)}}

    graph = StateGraph(AVPMessagesState)
    graph.add_node("writer", writer)
    graph.add_node("reviewer", reviewer)
    graph.add_edge(START, "writer")
    graph.add_edge("writer", "reviewer")
    graph.add_edge("reviewer", END)
    state = graph.compile().invoke({"messages": [HumanMessage(task)], "contexts": {}})
    assert set(state["contexts"]) == {"writer", "reviewer"}
    review = replies(state)[-1]
    assert avp(review)["reused_tokens"] == state["contexts"]["writer"].seq_len
    assert avp(review)["prefilled_tokens"] < 20


def test_serializer_stores_contexts_through_the_wire_codec(qwen):
    reply = model(qwen).invoke("Plan a trip.")
    context = context_of(reply)
    value = {"messages": [HumanMessage("Plan a trip."), reply], "contexts": {"a": context}}
    serde = AVPSerializer()
    kind, data = serde.dumps_typed(value)
    assert kind == "avp" and b"pickle" not in data
    restored = serde.loads_typed((kind, data))
    again = context_of(restored["messages"][1])
    assert restored["contexts"]["a"] is again and again.sequence == context.sequence
    assert restored["messages"][1].content == reply.content
    assert serde.dumps_typed({"x": 1}) == type(serde).__mro__[1]().dumps_typed({"x": 1})
    with pytest.raises(DecodeError):
        serde.loads_typed((kind, data[:-3]))

    # Through a checkpointer: the contexts channel and the message handles come back.
    def writer(state: AVPMessagesState) -> dict:
        reply = model(qwen).invoke(state["messages"])
        return {"messages": [reply], "contexts": {"writer": context_of(reply)}}

    graph = StateGraph(AVPMessagesState)
    graph.add_node("writer", writer)
    graph.add_edge(START, "writer")
    graph.add_edge("writer", END)
    app = graph.compile(checkpointer=InMemorySaver(serde=AVPSerializer()))
    config = {"configurable": {"thread_id": "t"}}
    live = app.invoke({"messages": [HumanMessage("Hi.")], "contexts": {}}, config)
    saved = app.get_state(config).values
    assert saved["contexts"]["writer"].sequence == live["contexts"]["writer"].sequence
    assert context_of(saved["messages"][-1]).sequence == live["contexts"]["writer"].sequence


CHECKPOINT_SCRIPT = textwrap.dedent(
    """
    import json, sqlite3, sys
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from avp_langgraph import AVPChatModel, AVPSerializer

    ROLES = ["Give the plan.", "Find the weakest step.", "Rewrite the plan."]
    chat = AVPChatModel.from_pretrained("tiny-qwen2", max_new_tokens=12)

    def build(checkpointer=None, interrupt_before=None):
        graph = StateGraph(MessagesState)
        previous = START
        for index, instruction in enumerate(ROLES):
            def node(state, instruction=instruction):
                turn = HumanMessage(instruction)
                return {"messages": [turn, chat.invoke([*state["messages"], turn])]}
            graph.add_node(f"agent{index}", node)
            graph.add_edge(previous, f"agent{index}")
            previous = f"agent{index}"
        graph.add_edge(previous, END)
        return graph.compile(checkpointer=checkpointer, interrupt_before=interrupt_before)

    def report(state):
        return {
            "contents": [m.content for m in state["messages"]],
            "avp": [m.response_metadata["avp"] for m in state["messages"]
                    if isinstance(m, AIMessage)],
        }

    def saver(path):
        conn = sqlite3.connect(path, check_same_thread=False)
        # contexts go to a store beside the database, so another process can read them
        return SqliteSaver(conn, serde=AVPSerializer(store=f"sqlite:{path}.contexts"))

    CONFIG = {"configurable": {"thread_id": "t1"}}

    if __name__ == "__main__":
        mode, path = sys.argv[1], sys.argv[2]
        if mode == "resume":
            print(json.dumps(report(build(saver(path)).invoke(None, CONFIG))))
    """
)


def test_checkpoint_resumes_in_a_fresh_process_with_latent_reuse(tmp_path):
    import runpy

    script = tmp_path / "graph.py"
    script.write_text(CHECKPOINT_SCRIPT)
    ns = runpy.run_path(str(script))
    first = {"messages": [HumanMessage("We are moving house next week.")]}
    reference = ns["report"](ns["build"]().invoke(first))

    db = str(tmp_path / "checkpoints.sqlite")
    paused = ns["build"](ns["saver"](db), interrupt_before=["agent2"])
    state = paused.invoke(first, ns["CONFIG"])
    assert len([m for m in state["messages"] if isinstance(m, AIMessage)]) == 2
    assert paused.get_state(ns["CONFIG"]).next == ("agent2",)

    out = subprocess.run(
        [sys.executable, str(script), "resume", db], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    resumed = json.loads(out.stdout.strip().splitlines()[-1])
    assert resumed["contents"] == reference["contents"]
    last = resumed["avp"][-1]
    assert last["mode"] == "latent" and last["reused_tokens"] > 0
    assert last["reused_context_id"] == resumed["avp"][-2]["context_id"]
