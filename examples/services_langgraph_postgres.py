"""A LangGraph thread on PostgreSQL: PostgresSaver keeps the checkpoints, a PostgreSQL context
store keeps the KV they refer to, and a second process resumes the thread reusing it.

Needs PostgreSQL on 127.0.0.1:5432 (or AVP_SUITE_POSTGRES) and
``pip install langgraph-checkpoint-postgres "avp-suite[postgres]"``.

    python examples/services_langgraph_postgres.py     # two turns, then a fresh process
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
from avp_langgraph import AVPChatModel, AVPSerializer, collect_garbage
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from psycopg.rows import dict_row

from avp_core import ContextStore
from avp_core.store.network import PostgresBackend

DSN = os.environ.get("AVP_SUITE_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def chatbot(saver: PostgresSaver):
    chat = AVPChatModel.from_pretrained("tiny-qwen2", max_new_tokens=8)
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [chat.invoke(state["messages"])]})
    graph.add_edge(START, "agent")
    graph.add_edge("agent", END)
    return graph.compile(checkpointer=saver)


def turn(thread: str, text: str) -> dict:
    # PostgresSaver wants autocommit and dict rows; contexts go to a table beside it
    with psycopg.connect(DSN, autocommit=True, prepare_threshold=0, row_factory=dict_row) as db:
        store = ContextStore(backend=PostgresBackend(DSN, table="avp_example_contexts"))
        saver = PostgresSaver(db, serde=AVPSerializer(store=store))
        saver.setup()
        config = {"configurable": {"thread_id": thread}}
        state = chatbot(saver).invoke({"messages": [HumanMessage(text)]}, config)
        return state["messages"][-1].response_metadata["avp"]


if __name__ == "__main__":
    if len(sys.argv) == 2:  # the second process
        report = turn(sys.argv[1], "And the third step?")
        print(f"fresh process: {report['mode']}, reused {report['reused_tokens']} tokens")
    else:
        thread = f"example-{uuid.uuid4().hex[:8]}"
        for text in ("Give me a two-step plan.", "What is the first step?"):
            report = turn(thread, text)
        print(f"first process: reused {report['reused_tokens']} tokens on turn 2")
        subprocess.run([sys.executable, __file__, thread], check=True)
        # done with the thread: delete it, then free the contexts no checkpoint refers to
        with psycopg.connect(DSN, autocommit=True, row_factory=dict_row) as db:
            store = ContextStore(backend=PostgresBackend(DSN, table="avp_example_contexts"))
            saver = PostgresSaver(db, serde=AVPSerializer(store=store))
            saver.delete_thread(thread)
            print(f"deleted the thread: {collect_garbage(saver, grace_s=0)} records freed")
