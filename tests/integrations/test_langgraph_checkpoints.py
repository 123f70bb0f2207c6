"""Threads and their checkpoints: a real SqliteSaver database written by someone else, a
checkpointer without AVPSerializer, and a thread that outgrows the model's context window."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import sqlite3
from enum import Enum

import ormsgpack
import pytest
from avp_langgraph import AVPChatModel, AVPSerializer, context_of
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

from avp_core.errors import DecodeError

KEY = b"checkpoint-key-0123456789abcdef"
CONFIG = {"configurable": {"thread_id": "t"}}


def _chatbot(chat: AVPChatModel, saver):
    """A one-agent chatbot graph: each turn, the model answers the whole thread."""

    def agent(state: MessagesState) -> dict:
        return {"messages": [chat.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_edge(START, "agent")
    graph.add_edge("agent", END)
    return graph.compile(checkpointer=saver)


def _graph(connector, saver):
    return _chatbot(AVPChatModel(connector=connector, max_new_tokens=6), saver)


def _saver(path, **options) -> SqliteSaver:
    return SqliteSaver(
        sqlite3.connect(path, check_same_thread=False), serde=AVPSerializer(**options)
    )


def _overwrite_checkpoints(path, kind: str, data: bytes) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE checkpoints SET type = ?, checkpoint = ?", (kind, data))


def _run_once(qwen, path, **options) -> None:
    _graph(qwen, _saver(path, **options)).invoke({"messages": [HumanMessage("Hi.")]}, CONFIG)


def test_a_checkpoint_that_names_a_function_does_not_run_it(qwen, tmp_path):
    db, marker = tmp_path / "c.sqlite", tmp_path / "pwned"
    _run_once(qwen, db)
    evil = ormsgpack.packb({"v": ormsgpack.Ext(0, ormsgpack.packb(("os", "mkdir", str(marker))))})
    _overwrite_checkpoints(db, "msgpack", evil)
    with pytest.raises(DecodeError, match=r"os\.mkdir.*allowed_types"):
        _graph(qwen, _saver(db)).get_state(CONFIG)
    assert not marker.exists()
    _permissive().loads_typed(("msgpack", evil))  # what LangGraph's default loader does
    assert marker.exists()


def _permissive() -> JsonPlusSerializer:
    """LangGraph's loader as it loads by default (newer versions can be made strict)."""
    newer = "allowed_msgpack_modules" in inspect.signature(JsonPlusSerializer.__init__).parameters
    return JsonPlusSerializer(**({"allowed_msgpack_modules": True} if newer else {}))


def test_other_serialization_types_are_refused(qwen, tmp_path):
    db = tmp_path / "c.sqlite"
    _run_once(qwen, db)
    _overwrite_checkpoints(db, "pickle", b"\x80\x04K\x01.")
    with pytest.raises(DecodeError, match="pickle"):
        _graph(qwen, _saver(db)).get_state(CONFIG)


class Mood(Enum):
    CALM = "calm"


@dataclasses.dataclass
class Note:
    text: str


def test_own_types_load_once_allowed():
    value = {"mood": Mood.CALM, "note": Note("hi")}
    data = AVPSerializer().dumps_typed(value)
    with pytest.raises(DecodeError, match=r"allowed_types=\[Mood\]"):
        AVPSerializer().loads_typed(data)
    assert AVPSerializer(allowed_types=[Mood, Note]).loads_typed(data) == value
    assert AVPSerializer(allowed_types=True).loads_typed(data) == value


@pytest.mark.parametrize("where", ["inline", "store"])
def test_signed_checkpoints_load_only_with_their_key(qwen, tmp_path, caplog, where):
    db = tmp_path / "c.sqlite"
    # contexts in the checkpoint itself, or in a store that signs its records
    kept = {"inline": True} if where == "inline" else {"store": f"sqlite:{tmp_path}/ctx.db"}
    _run_once(qwen, db, key=KEY, **kept)
    signed = _graph(qwen, _saver(db, key=KEY, **kept)).get_state(CONFIG).values["messages"][-1]
    assert context_of(signed) is not None

    with caplog.at_level(logging.WARNING, logger="avp_langgraph"):
        state = _graph(qwen, _saver(db, key=b"another-key-0123456789", **kept)).get_state(CONFIG)
        reply = state.values["messages"][-1]
        assert isinstance(reply, AIMessage) and reply.content == signed.content
        assert context_of(reply) is None and "signature does not match" in caplog.text
    with pytest.raises(DecodeError, match="signature"):
        graph = _graph(qwen, _saver(db, key=KEY[::-1], on_invalid_context="raise", **kept))
        context_of(graph.get_state(CONFIG).values["messages"][-1])

    # the graph goes on from a checkpoint whose context was dropped: B reads the text
    resumed = _graph(qwen, _saver(db, key=b"another-key-0123456789", **kept))
    after = resumed.invoke({"messages": [HumanMessage("And?")]}, CONFIG)
    assert after["messages"][-1].response_metadata["avp"]["reused_tokens"] == 0


def test_a_damaged_checkpoint_container_is_a_decode_error():
    serde = AVPSerializer(on_invalid_context="raise")
    bad_name = b"AVPCKPT1" + (2).to_bytes(2, "little") + b"\xff\xfe"
    with pytest.raises(DecodeError, match="bad name"):
        serde.loads_typed(("avp", bad_name))


def test_a_context_that_decodes_but_cannot_be_one_is_dropped_or_a_decode_error(qwen, caplog):
    import torch
    from avp_langgraph.serializer import MAGIC, _pack

    from avp_core import wire

    mixed = [(torch.randn(1, 2, 3, 4),) * 2, (torch.randn(1, 2, 4, 4),) * 2]  # 3 vs 4 positions
    blob = wire.encode_kv_cache(mixed, token_ids=[1, 2, 3])
    inner_type, inner = AVPSerializer().dumps_typed({"contexts": {"a": {"__avp_context__": "x"}}})
    value = ("avp", _pack(MAGIC, inner_type, inner, {"x": blob}))
    with pytest.raises(DecodeError, match="positions"):
        AVPSerializer(on_invalid_context="raise").loads_typed(value)
    with caplog.at_level(logging.WARNING, logger="avp_langgraph"):
        assert AVPSerializer().loads_typed(value) == {"contexts": {"a": None}}
    assert "dropped" in caplog.text


def test_a_thread_that_outgrows_the_context_window_stops_with_a_clear_error():
    from avp_core import ContextWindowError, HuggingFaceConnector

    small = HuggingFaceConnector.from_pretrained("tiny-qwen2")
    small.model.config.max_position_embeddings = 120
    app = _chatbot(AVPChatModel(connector=small, max_new_tokens=8), InMemorySaver())
    config = {"configurable": {"thread_id": "long"}}
    turns = 0
    with pytest.raises(ContextWindowError, match="attends to 120"):
        while turns < 50:
            app.invoke({"messages": [HumanMessage("Tell me more about rivers.")]}, config)
            turns += 1
    assert 2 <= turns < 50
    replies = [m for m in app.get_state(config).values["messages"] if isinstance(m, AIMessage)]
    assert len(replies) == turns
    assert all(m.usage_metadata["total_tokens"] <= 120 for m in replies)


def test_a_checkpointer_without_the_serializer_still_reuses_or_says_how_to(qwen, caplog):
    config = {"configurable": {"thread_id": "chat"}}
    saver = InMemorySaver()  # its default serializer keeps each context's description only
    chat = AVPChatModel(connector=qwen, max_new_tokens=8)
    app = _chatbot(chat, saver)
    with caplog.at_level("WARNING", logger="avp_langgraph"):
        app.invoke({"messages": [HumanMessage("Name a river.")]}, config)
        state = app.invoke({"messages": [HumanMessage("And another?")]}, config)
    # the model finds its own recent context by id: reuse, no warning
    assert state["messages"][-1].response_metadata["avp"]["reused_tokens"] > 0
    assert "serde=AVPSerializer()" not in caplog.text
    # another model (another process, a restart) has no such context: text, and a warning
    other = _chatbot(AVPChatModel(connector=qwen, max_new_tokens=8), saver)
    with caplog.at_level("WARNING", logger="avp_langgraph"):
        state = other.invoke({"messages": [HumanMessage("One more?")]}, config)
    assert state["messages"][-1].response_metadata["avp"]["reused_tokens"] == 0
    assert "serde=AVPSerializer()" in caplog.text
