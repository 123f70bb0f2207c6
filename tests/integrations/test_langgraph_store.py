"""LangGraph threads whose checkpoints hold context references: linear storage, a store that
goes down, garbage collection of deleted threads, and PostgresSaver across processes."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from avp_langgraph import (
    AVPChatModel,
    AVPSerializer,
    collect_garbage,
    context_of,
    live_references,
)
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from services import RedisServer, postgres_dsn, require, unique_name
from test_langgraph_checkpoints import _chatbot

from avp_core import ContextStore
from avp_core.store import SQLiteBackend


def _talk(app, thread, turns, start=0):
    config = {"configurable": {"thread_id": thread}}
    state = None
    for turn in range(start, start + turns):
        state = app.invoke({"messages": [HumanMessage(f"Tell me fact {turn}.")]}, config)
    return state


def _checkpoint_bytes(path) -> int:
    with sqlite3.connect(path) as db:
        (checkpoints,) = db.execute(
            "SELECT SUM(LENGTH(checkpoint) + LENGTH(metadata)) FROM checkpoints"
        ).fetchone()
        (writes,) = db.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes").fetchone()
    return checkpoints + writes


def test_a_thread_stores_each_position_once(qwen, tmp_path):
    chat = AVPChatModel(connector=qwen, max_new_tokens=6)
    sizes = {}
    for mode in ("text", "inline", "store"):
        path = tmp_path / f"{mode}.sqlite"
        serde = {
            "text": JsonPlusSerializer(),
            "inline": AVPSerializer(inline=True),
            "store": AVPSerializer(store=ContextStore(backend=SQLiteBackend(tmp_path / "kv.db"))),
        }[mode]
        saver = SqliteSaver(sqlite3.connect(path, check_same_thread=False), serde=serde)
        state = _talk(_chatbot(chat, saver), "t", 16)
        sizes[mode] = _checkpoint_bytes(path)
        if mode == "store":
            final = context_of(state["messages"][-1])
            stored = serde.store.backend.nbytes()
    # the checkpoints hold references: about what the same thread stores as text
    assert sizes["store"] < 1.5 * sizes["text"]
    # the contexts: each position once, not every context again in every checkpoint
    assert final.nbytes <= stored < 1.3 * final.nbytes
    assert sizes["inline"] > 20 * (stored + sizes["text"])


@pytest.mark.services
def test_a_store_that_goes_down_costs_reuse_not_checkpoints(qwen, tmp_path, caplog):
    server = RedisServer()
    try:
        store = ContextStore(backend=server.url)
        serde = AVPSerializer(store=store)
        path = tmp_path / "c.sqlite"
        app = _chatbot(
            AVPChatModel(connector=qwen, max_new_tokens=6),
            SqliteSaver(sqlite3.connect(path, check_same_thread=False), serde=serde),
        )
        state = _talk(app, "t", 2)
        assert state["messages"][-1].response_metadata["avp"]["reused_tokens"] > 0
        server.stop()
        with caplog.at_level(logging.WARNING, logger="avp_langgraph"):
            state = _talk(app, "t", 2, start=2)  # saving fails: checkpoints keep the text
        assert "was not saved" in caplog.text and "unavailable" in caplog.text
        # every checkpoint holds every message again: still one warning per context
        said = [line for line in caplog.text.splitlines() if "was not saved" in line]
        assert len(said) == len(set(said))
        assert len(state["messages"]) == 8
        # a thread read back while the store is down goes on from the text, with a warning
        caplog.clear()
        reader = _chatbot(
            AVPChatModel(connector=qwen, max_new_tokens=6),
            SqliteSaver(
                sqlite3.connect(path, check_same_thread=False),
                serde=AVPSerializer(store=ContextStore(backend=store.backend)),
            ),
        )
        with caplog.at_level(logging.WARNING, logger="avp_langgraph"):
            state = _talk(reader, "t", 1, start=4)
        assert len(state["messages"]) == 10 and isinstance(state["messages"][-1], AIMessage)
        assert "KV is not in this process" in caplog.text
    finally:
        server.stop()


def test_collect_garbage_frees_the_contexts_of_deleted_threads(qwen):
    store = ContextStore(backend="memory:")
    saver = InMemorySaver(serde=AVPSerializer(store=store))
    app = _chatbot(AVPChatModel(connector=qwen, max_new_tokens=6), saver)
    _talk(app, "keep", 3)
    _talk(app, "drop", 3)
    before = len(store.backend.entries())
    assert collect_garbage(saver, grace_s=0) == 0  # every record is referred to
    saver.delete_thread("drop")
    freed = collect_garbage(saver, grace_s=0)
    entries = store.backend.entries()
    assert freed >= 1 and len(entries) == before - freed
    # what is left is exactly what the kept thread's references build on
    parents = {entry.key: entry.parent for entry in entries}
    needed = set()
    for ref in live_references(saver):
        key = ref.key
        while key is not None:
            needed.add(key)
            key = parents[key]
    assert set(parents) == needed
    # the kept thread still resumes from its contexts
    state = _talk(app, "keep", 1, start=3)
    assert state["messages"][-1].response_metadata["avp"]["reused_tokens"] > 0


POSTGRES_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import psycopg
    from psycopg.rows import dict_row
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from avp_langgraph import AVPChatModel, AVPSerializer

    dsn, schema, store, thread, turns = sys.argv[1:6]
    chat = AVPChatModel.from_pretrained("tiny-qwen2", max_new_tokens=6)

    def agent(state):
        return {"messages": [chat.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_edge(START, "agent")
    graph.add_edge("agent", END)
    connection = psycopg.connect(dsn, autocommit=True, prepare_threshold=0,
                                 row_factory=dict_row, options=f"-c search_path={schema}")
    saver = PostgresSaver(connection, serde=AVPSerializer(store=store))
    saver.setup()
    app = graph.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": thread}}
    for turn in range(int(turns)):
        state = app.invoke({"messages": [HumanMessage(f"Tell me fact {turn}.")]}, config)
    print(json.dumps([m.response_metadata["avp"] for m in state["messages"] if m.type == "ai"]))
    """
)


@pytest.mark.services
def test_postgres_saver_thread_resumes_in_another_process_reusing_its_kv(tmp_path):
    require("langgraph.checkpoint.postgres", "langgraph-checkpoint-postgres")
    import psycopg

    dsn, schema = postgres_dsn(), unique_name()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    store = f"{dsn}?options=-csearch_path%3D{schema}"
    script = tmp_path / "thread.py"
    script.write_text(POSTGRES_SCRIPT)

    def run(thread, turns):
        out = subprocess.run(
            [sys.executable, str(script), dsn, schema, store, thread, str(turns)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    try:
        live = run("live", 3)  # one process, three turns
        run("resumed", 2)  # two turns, then the process exits
        resumed = run("resumed", 1)  # a fresh process continues the thread
        assert resumed[-1]["mode"] == "latent"
        assert resumed[-1]["reused_tokens"] == live[-1]["reused_tokens"] > 0
        assert resumed[-1]["prefilled_tokens"] == live[-1]["prefilled_tokens"]
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_store_benchmark_runs_its_three_parts(capsys):
    from avp_suite.bench import store

    payload = store.main(
        ["--turns", "6", "--kv-mb", "1", "--runs", "1", "--backends", "memory,directory,sqlite"]
    )
    runs = payload["threads"]["runs"]
    assert set(runs) == {"memory", "directory", "sqlite", "memory, bounded"}
    for run in runs.values():
        assert run["reused_tokens"] > 0 and run["ratio"] < 1.5
    bounded = runs["memory, bounded"]
    assert bounded["store_bytes"] <= bounded["limit"]
    assert set(payload["throughput"]["results"]) == {
        "codec round trip",
        "memory",
        "directory",
        "sqlite",
    }
    resume = payload["resume"]
    assert resume["resumed"]["reused_tokens"] == resume["live"]["reused_tokens"] > 0
    assert "x codec" in capsys.readouterr().out
