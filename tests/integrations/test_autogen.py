"""AutoGen adapter: real teams on the built-in offline models, no mocks of model or framework.

Async code runs through ``asyncio.run`` so the tests need no pytest plugin.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import autogen_agentchat.messages
import autogen_core
import avp_autogen
import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import Response
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import BaseChatMessage, ModelClientStreamingChunkEvent, TextMessage
from autogen_agentchat.teams import RoundRobinGroupChat, SelectorGroupChat
from autogen_core import CancellationToken
from autogen_core.models import (
    AssistantMessage,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    SystemMessage,
    UserMessage,
    validate_model_info,
)
from avp_autogen import AVPAssistantAgent, AVPChatCompletionClient, LatentMessage
from avp_autogen._threads import stream_in_thread

from avp_core import ContextStore, InvalidRequestError, wire
from avp_core.store import MemoryBackend
from avp_suite.bench.workload import ChainWorkload, measure
from avp_suite.chains.autogen import run_chain

TASK = "Plan a three-day trip to Lisbon with a museum visit and a train ride to Sintra."
NAMES = ("planner", "critic", "editor")
ROLES = (
    "You are the planner. Write the plan.",
    "You are the critic. Find the biggest risk in the plan.",
    "You are the editor. Merge the plan and the critique.",
)
TOKENS = 12
TURNS = 6


def run(coro):
    return asyncio.run(coro)


def latent_agents(connector, *, models=None, **options):
    models = models or (connector,) * len(NAMES)
    return [
        AVPAssistantAgent(
            name, connector=model, system_message=role, max_new_tokens=TOKENS, **options
        )
        for name, role, model in zip(NAMES, ROLES, models)
    ]


def stock_agents(client):
    return [
        AssistantAgent(name, model_client=client, system_message=role)
        for name, role in zip(NAMES, ROLES)
    ]


def round_robin(agents, turns=TURNS):
    return RoundRobinGroupChat(
        agents,
        termination_condition=MaxMessageTermination(turns + 1),
        custom_message_types=[LatentMessage],
    )


def replies(result):
    return [m for m in result.messages if isinstance(m, BaseChatMessage) and m.source != "user"]


def recorded(connector, coro):
    with connector.record() as calls:
        result = run(coro)
    return result, calls


@pytest.fixture(scope="module")
def latent_run(qwen):
    agents = latent_agents(qwen)
    result, calls = recorded(qwen, round_robin(agents).run(task=TASK))
    return agents, replies(result), calls


@pytest.fixture(scope="module")
def text_run(qwen):
    client = AVPChatCompletionClient(qwen, latent=False, max_new_tokens=TOKENS)
    result, calls = recorded(qwen, round_robin(stock_agents(client)).run(task=TASK))
    return replies(result), calls


# -- environment -----------------------------------------------------------------------------


def test_adapter_package_imports_with_its_framework():
    assert avp_autogen.__doc__
    assert autogen_agentchat.messages.BaseChatMessage
    assert autogen_core.CancellationToken


def test_wire_schema_builds_under_autogens_protobuf():
    import google.protobuf

    assert google.protobuf.__version__.startswith("5.29")
    assert wire.MAGIC == b"AV"


# -- LatentMessage -------------------------------------------------------------------------------


def test_latent_message_is_text_for_every_reader(qwen):
    generation = qwen.generate("Plan a trip.", max_new_tokens=4)
    message = LatentMessage(content=generation.text, source="planner", context=generation.context)
    assert message.to_text() == message.to_model_text() == generation.text
    model_message = message.to_model_message()
    assert isinstance(model_message, UserMessage)
    assert (model_message.content, model_message.source) == (generation.text, "planner")
    assert message.context is generation.context
    assert LatentMessage(content="hi", source="x").context is None


@pytest.mark.parametrize("where", ["store", "inline"])
def test_latent_message_dump_load_carries_its_context(qwen, monkeypatch, where):
    backend = MemoryBackend()
    monkeypatch.setattr(LatentMessage, "inline", where == "inline")
    monkeypatch.setattr(LatentMessage, "store", ContextStore(backend=backend))
    generation = qwen.generate("Plan a trip.", max_new_tokens=4, source_agent="planner")
    message = LatentMessage(content=generation.text, source="planner", context=generation.context)
    data = json.loads(json.dumps(message.dump()))  # JSON-able: no pickle, no tensors
    if where == "inline":
        assert base64.b64decode(data["avp_context"])[:2] == wire.MAGIC
    else:  # a small reference; the KV is in the store
        assert data["avp_context"] is None and len(json.dumps(data["avp_ref"])) < 300
        assert data["avp_ref"]["key"] == message.ref.key
    # read back as another process would: a fresh store on the same backend
    monkeypatch.setattr(LatentMessage, "store", ContextStore(backend=backend))
    loaded = LatentMessage.load(data)
    assert (loaded.id, loaded.content, loaded.source) == (message.id, message.content, "planner")
    restored = loaded.context
    assert restored is not None and restored is not generation.context
    assert restored.sequence == generation.context.sequence
    assert restored.context_id == generation.context.context_id
    for (k1, v1), (k2, v2) in zip(restored.kv, generation.context.kv):
        assert k1.equal(k2) and v1.equal(v2)
    assert qwen.check_context(restored).latent
    no_context = LatentMessage.load(json.loads(json.dumps(message.dump(include_context=False))))
    assert no_context.context is None and no_context.content == message.content


def test_latent_message_with_corrupt_context_keeps_its_text(qwen, caplog, monkeypatch):
    monkeypatch.setattr(LatentMessage, "inline", True)
    generation = qwen.generate("Plan a trip.", max_new_tokens=4)
    data = dict(LatentMessage(content="ok", source="a", context=generation.context).dump())
    raw = bytearray(base64.b64decode(data["avp_context"]))
    raw[-3] ^= 0xFF  # flip tensor bytes: the checksum or shape check fails
    for bad in (base64.b64encode(bytes(raw)).decode(), "not base64 !!", 42):
        with caplog.at_level(logging.WARNING, logger="avp_autogen"):
            loaded = LatentMessage.load({**data, "avp_context": bad})
        assert loaded.context is None and loaded.content == "ok"
    assert "dropping its context" in caplog.text


def test_latent_message_whose_stored_context_is_gone_keeps_its_text(qwen, caplog, monkeypatch):
    backend = MemoryBackend()
    monkeypatch.setattr(LatentMessage, "store", ContextStore(backend=backend))
    generation = qwen.generate("Plan a trip.", max_new_tokens=4)
    data = dict(LatentMessage(content="ok", source="a", context=generation.context).dump())
    backend.delete([data["avp_ref"]["key"]])
    monkeypatch.setattr(LatentMessage, "store", ContextStore(backend=backend))
    for ref in (data["avp_ref"], {**data["avp_ref"], "key": "../x"}):
        with caplog.at_level(logging.WARNING, logger="avp_autogen"):
            loaded = LatentMessage.load({**data, "avp_ref": ref})
        assert loaded.context is None and loaded.content == "ok"
    assert "context not loaded" in caplog.text and "bad context reference" in caplog.text


# -- AVPAssistantAgent in teams ---------------------------------------------------------------


def test_round_robin_every_turn_after_the_first_continues_the_previous_context(latent_run):
    agents, messages, calls = latent_run
    assert [m.source for m in messages] == [*NAMES, *NAMES]
    assert all(isinstance(m, LatentMessage) and m.context is not None for m in messages)
    assert messages[0].metadata["avp.mode"] == "text" and calls[0].reused_tokens == 0
    for previous, message, usage in zip(messages, messages[1:], calls[1:]):
        assert message.metadata["avp.mode"] == "latent"
        assert message.metadata["avp.continued"] == previous.id
        assert usage.reused_tokens == previous.context.seq_len
        assert message.metadata["avp.reused_tokens"] == str(usage.reused_tokens)
        assert message.models_usage.prompt_tokens == usage.prompt_tokens
    # in process, the receiver holds the very object the sender produced (no copy, no decode)
    critic_saw = next(m for m in agents[1].history if m.source == "planner")
    assert critic_saw.context is messages[0].context


def test_latent_team_prefills_far_less_than_the_text_team(latent_run, text_run):
    _, latent_messages, latent_calls = latent_run
    text_messages, text_calls = text_run
    assert len(text_calls) == len(latent_calls) == TURNS
    assert all(c.reused_tokens == 0 for c in text_calls)
    latent_prefill = sum(c.prefilled_tokens for c in latent_calls)
    text_prefill = sum(c.prefilled_tokens for c in text_calls)
    assert latent_prefill * 2 < text_prefill, (latent_prefill, text_prefill)
    # same first prompt (system + task), so the same first answer
    assert latent_messages[0].content == text_messages[0].content


def test_streaming_yields_token_chunks_then_the_response(qwen):
    agent = latent_agents(qwen)[0]
    stream = agent.on_messages_stream(
        [TextMessage(content=TASK, source="user")], CancellationToken()
    )
    items = run(_collect(stream))
    chunks = [i for i in items if isinstance(i, ModelClientStreamingChunkEvent)]
    assert isinstance(items[-1], Response) and len(chunks) >= 2
    reply = items[-1].chat_message
    assert isinstance(reply, LatentMessage)
    assert "".join(c.content for c in chunks) == reply.content
    assert {c.full_message_id for c in chunks} == {reply.id}
    assert LatentMessage in agent.produced_message_types


async def _collect(stream):
    return [item async for item in stream]


async def _team_stream(team):
    return [item async for item in team.run_stream(task=TASK)]


def test_agent_stops_generating_when_cancelled(qwen):
    agent = AVPAssistantAgent("planner", connector=qwen, max_new_tokens=4000, ignore_eos=True)
    before = qwen.stats.calls

    async def main():
        token = CancellationToken()
        with pytest.raises(asyncio.CancelledError):
            async for _ in agent.on_messages_stream(
                [TextMessage(content=TASK, source="user")], token
            ):
                token.cancel()

    run(main())
    assert qwen.stats.calls == before
    assert [m.source for m in agent.history] == ["user"]  # no reply was recorded


def test_team_run_stream_shows_chunks_of_every_agent(qwen):
    items = run(_team_stream(round_robin(latent_agents(qwen), turns=3)))
    chunks = [i for i in items if isinstance(i, ModelClientStreamingChunkEvent)]
    assert {c.source for c in chunks} == set(NAMES)
    final = items[-1].messages
    assert not any(isinstance(m, ModelClientStreamingChunkEvent) for m in final)


def test_selector_group_chat_with_a_deterministic_selector(qwen, latent_run):
    def next_speaker(thread):
        spoken = [m for m in thread if isinstance(m, BaseChatMessage) and m.source != "user"]
        return NAMES[len(spoken) % len(NAMES)]

    team = SelectorGroupChat(
        latent_agents(qwen),
        model_client=AVPChatCompletionClient(qwen, max_new_tokens=4),
        selector_func=next_speaker,
        termination_condition=MaxMessageTermination(TURNS + 1),
        custom_message_types=[LatentMessage],
    )
    messages = replies(run(team.run(task=TASK)))
    assert [m.source for m in messages] == [*NAMES, *NAMES]
    for previous, message in itertools.pairwise(messages):
        assert message.metadata["avp.continued"] == previous.id
        assert message.metadata["avp.reused_tokens"] == str(previous.context.seq_len)
    # the same conversation as the round robin, so the same answers
    assert [m.content for m in messages] == [m.content for m in latent_run[1]]


def test_selector_group_chat_selecting_with_the_model_client(qwen):
    """The random-weight model names no participant, so AutoGen falls back (first
    participant, then the previous speaker); the chat still completes, the agents still
    continue contexts, and the selector's own prompts reuse their common prefixes."""
    selector = AVPChatCompletionClient(qwen, max_new_tokens=6)
    team = SelectorGroupChat(
        latent_agents(qwen),
        model_client=selector,
        termination_condition=MaxMessageTermination(TURNS + 1),
        custom_message_types=[LatentMessage],
        max_selector_attempts=2,
    )
    with qwen.record() as calls:
        messages = replies(run(team.run(task=TASK)))
    assert len(messages) == TURNS and {m.source for m in messages} <= set(NAMES)
    assert all(m.metadata["avp.mode"] == "latent" for m in messages[1:])
    agent_reuse = sum(int(m.metadata["avp.reused_tokens"]) for m in messages)
    selector_calls = len(calls) - TURNS
    assert selector_calls >= TURNS - 1 and selector.total_usage().prompt_tokens > 0
    assert sum(c.reused_tokens for c in calls) > agent_reuse  # the selector reused too


def test_mixed_team_falls_back_to_text_and_reuses_again(qwen, other):
    agents = latent_agents(qwen, models=(qwen, other, qwen))
    result, calls = recorded(qwen, round_robin(agents).run(task=TASK))
    messages = replies(result)
    assert [m.source for m in messages] == [*NAMES, *NAMES]
    by_id = {m.id: m for m in messages}
    critic_first = messages[1]
    assert critic_first.metadata["avp.mode"] == "text"
    assert critic_first.metadata["avp.reused_tokens"] == "0"
    assert "architectures differ" in critic_first.metadata["avp.reason"]
    # the editor skips the critic's tiny-other context and continues the planner's
    editor_first = messages[2]
    assert editor_first.metadata["avp.continued"] == messages[0].id
    assert int(editor_first.metadata["avp.reused_tokens"]) == messages[0].context.seq_len
    # every later turn reuses a context of its own model, never the other model's
    for message, agent in zip(messages[3:], agents * 2):
        continued = by_id[message.metadata["avp.continued"]]
        assert continued.context.identity == agent.connector.identity
        assert int(message.metadata["avp.reused_tokens"]) == continued.context.seq_len
    assert {c.reused_tokens > 0 for c in calls} == {True, False}


def test_stock_agent_in_the_team_reads_text_and_becomes_a_new_turn(qwen):
    planner, _, editor = latent_agents(qwen)
    client = AVPChatCompletionClient(qwen, max_new_tokens=TOKENS)
    critic = AssistantAgent("critic", model_client=client, system_message=ROLES[1])
    messages = replies(run(round_robin([planner, critic, editor], turns=3).run(task=TASK)))
    assert [type(m).__name__ for m in messages] == ["LatentMessage", "TextMessage", "LatentMessage"]
    assert messages[2].metadata["avp.continued"] == messages[0].id
    assert int(messages[2].metadata["avp.reused_tokens"]) == messages[0].context.seq_len


def test_agent_state_keeps_its_history_and_the_context_it_continues(qwen, latent_run):
    agents, messages, _ = latent_run
    state = json.loads(json.dumps(run(agents[0].save_state())))
    assert state["type"] == "AVPAssistantAgentState"
    own_last = messages[3]  # the planner spoke at turns 1 and 4; 5 and 6 are still buffered
    latent = [m for m in agents[0].history if isinstance(m, LatentMessage)]
    referenced = [m["id"] for m in state["history"] if m.get("avp_ref")]
    assert referenced == [m.id for m in latent] and own_last.id in referenced
    assert not any(m.get("avp_context") for m in state["history"])  # no KV in the state
    fresh = latent_agents(qwen)[0]
    run(fresh.load_state(state))
    assert [m.content for m in fresh.history] == [m.content for m in agents[0].history]
    assert fresh.history[-1].context.sequence == own_last.context.sequence
    reply = run(fresh.on_messages(messages[4:], CancellationToken())).chat_message
    assert reply.metadata["avp.continued"] == messages[-1].id
    assert int(reply.metadata["avp.reused_tokens"]) == messages[-1].context.seq_len
    alone = latent_agents(qwen)[0]
    run(alone.load_state(state))  # nothing new: it continues its own restored context
    reply = run(alone.on_messages([], CancellationToken())).chat_message
    assert reply.metadata["avp.continued"] == own_last.id
    assert int(reply.metadata["avp.reused_tokens"]) == own_last.context.seq_len
    run(fresh.on_reset(CancellationToken()))
    assert fresh.history == []


_RESUME = textwrap.dedent(
    """
    import asyncio, json, sys
    from autogen_agentchat.conditions import MaxMessageTermination
    from autogen_agentchat.teams import RoundRobinGroupChat
    from avp_autogen import AVPAssistantAgent, LatentMessage
    from avp_core import ContextStore, HuggingFaceConnector

    async def main():
        state_file, names, roles, tokens = sys.argv[1], *json.loads(sys.argv[2])
        LatentMessage.store = ContextStore(backend=sys.argv[3])  # where the state's KV is
        llm = HuggingFaceConnector.from_pretrained("tiny-qwen2")
        agents = [
            AVPAssistantAgent(n, connector=llm, system_message=r, max_new_tokens=tokens)
            for n, r in zip(names, roles)
        ]
        team = RoundRobinGroupChat(
            agents, termination_condition=MaxMessageTermination(3),
            custom_message_types=[LatentMessage],
        )
        await team.load_state(json.loads(open(state_file).read()))
        result = await team.run()
        out = [[m.source, m.content, m.metadata] for m in result.messages]
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_team_save_state_then_load_state_in_a_fresh_process(
    qwen, latent_run, tmp_path, monkeypatch
):
    contexts = str(tmp_path / "contexts")
    monkeypatch.setattr(LatentMessage, "store", ContextStore(backend=contexts))
    team = round_robin(latent_agents(qwen), turns=3)
    first = replies(run(team.run(task=TASK)))
    state_file = tmp_path / "team.json"
    state = json.dumps(run(team.save_state()))
    state_file.write_text(state)
    # references only: every message of every agent, each position of KV stored once
    assert len(state) < 60_000
    stored = LatentMessage.store.backend.nbytes()
    assert stored < 1.5 * sum(m.context.nbytes for m in first)
    script = tmp_path / "resume.py"
    script.write_text(_RESUME)
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(state_file),
            json.dumps([NAMES, ROLES, TOKENS]),
            contexts,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r[0] for r in resumed] == list(NAMES)
    assert resumed[0][2]["avp.continued"] == first[-1].id  # decoded from the saved bytes
    assert int(resumed[0][2]["avp.reused_tokens"]) == first[-1].context.seq_len
    assert all(r[2]["avp.mode"] == "latent" for r in resumed)
    # the resumed chat says exactly what the uninterrupted one said
    assert [r[1] for r in resumed] == [m.content for m in latent_run[1][3:]]


# -- AVPChatCompletionClient --------------------------------------------------------------------

CHAT = [
    SystemMessage(content="You are a careful planner."),
    UserMessage(content="Plan a day in Porto.", source="user"),
]


def test_client_store_on_disk_serves_a_later_process(qwen, tmp_path):
    path = f"sqlite:{tmp_path / 'contexts.db'}"
    first = AVPChatCompletionClient(qwen, store=ContextStore(backend=path), max_new_tokens=8)
    before = run(first.create(CHAT))
    long_chat = [
        *CHAT,
        AssistantMessage(content=before.content, source="planner"),
        UserMessage(content="Now the same for a week, day by day.", source="user"),
    ]
    run(first.create(long_chat))
    # another process: a new client on the same file, nothing live
    later = AVPChatCompletionClient(qwen, store=ContextStore(backend=path), max_new_tokens=8)
    again = run(later.create(long_chat))
    usage = later.last_usage  # all but the last position, from the saved context
    assert usage.reused_tokens == usage.prompt_tokens - 1 >= 63
    text = AVPChatCompletionClient(qwen, latent=False, max_new_tokens=8)
    assert again.content == run(text.create(long_chat)).content


def test_client_reuses_exact_prefixes_and_matches_the_text_path(qwen):
    latent = AVPChatCompletionClient(qwen, max_new_tokens=8)
    text = AVPChatCompletionClient(qwen, latent=False, max_new_tokens=8)
    first = run(latent.create(CHAT))
    assert run(text.create(CHAT)).content == first.content
    assert latent.last_usage.reused_tokens == 0
    follow = [
        *CHAT,
        AssistantMessage(content=first.content, source="planner"),
        UserMessage(content="Make it shorter.", source="user"),
    ]
    second = run(latent.create(follow))
    assert latent.last_usage.reused_tokens > 0
    assert second.content == run(text.create(follow)).content
    assert text.last_usage.reused_tokens == 0
    assert second.usage.prompt_tokens == latent.count_tokens(follow)
    assert latent.remaining_tokens(follow) == qwen.context_window - latent.count_tokens(follow)
    assert (
        latent.total_usage().prompt_tokens == first.usage.prompt_tokens + second.usage.prompt_tokens
    )
    assert latent.actual_usage().completion_tokens == 16
    assert len(latent.store) == 2 and len(text.store) == 0
    run(latent.close())
    assert len(latent.store) == 0


def test_client_stream_yields_chunks_then_the_result(qwen):
    client = AVPChatCompletionClient(qwen, max_new_tokens=10)
    items = run(_collect(client.create_stream(CHAT)))
    assert isinstance(items[-1], CreateResult) and len(items) > 2
    assert "".join(items[:-1]) == items[-1].content
    assert items[-1].finish_reason == "length" and items[-1].usage.completion_tokens == 10


def test_client_model_info_and_what_it_refuses(qwen):
    client = AVPChatCompletionClient(qwen)
    validate_model_info(client.model_info)
    info = client.model_info
    assert info["function_calling"] and info["json_output"] and info["structured_output"]
    assert not info["vision"] and info["family"] == "unknown"
    with pytest.raises(InvalidRequestError, match="extra_create_args: unknown generation options"):
        run(client.create(CHAT, extra_create_args={"logprobs": True}))
    result = run(client.create(CHAT, extra_create_args={"max_new_tokens": 3}))
    assert result.usage.completion_tokens == 3


def test_client_renders_tool_results_and_history(qwen):
    client = AVPChatCompletionClient(qwen)
    messages = [
        *CHAT,
        FunctionExecutionResultMessage(
            content=[FunctionExecutionResult(content="22 C", name="weather", call_id="1")]
        ),
    ]
    assert client.count_tokens(messages) > client.count_tokens(CHAT)
    multimodal = [UserMessage(content=["a", "b"], source="user")]
    assert client.count_tokens(multimodal) == qwen.count_tokens("a\nb")


def test_client_does_not_block_the_event_loop(qwen, loop_gate):
    client = AVPChatCompletionClient(qwen, max_new_tokens=48)
    gate = loop_gate(qwen)

    async def main():
        create = asyncio.ensure_future(client.create(CHAT))
        await gate.open_after(create)
        return threading.get_ident(), await create

    loop_thread, result = run(main())
    assert result.usage.completion_tokens == 48
    assert gate.passed(loop_thread)  # the model ran off the loop while the loop kept running


def test_client_honours_cancellation_between_tokens(qwen):
    client = AVPChatCompletionClient(qwen, max_new_tokens=4000, ignore_eos=True)
    before = qwen.stats.calls

    async def main():
        token = CancellationToken()
        stream = client.create_stream(CHAT, cancellation_token=token)
        with pytest.raises(asyncio.CancelledError):
            async for _ in stream:
                token.cancel()

    run(main())
    assert qwen.stats.calls == before  # the generation never completed
    token = CancellationToken()
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        run(client.create(CHAT, cancellation_token=token))


def test_worker_stops_between_items_when_cancelled():
    produced = []

    def produce():
        for i in range(1000):
            time.sleep(0.002)
            produced.append(i)
            yield i

    async def main():
        token = CancellationToken()
        seen = []
        with pytest.raises(asyncio.CancelledError):
            async for item in stream_in_thread(produce, token):
                seen.append(item)
                if len(seen) == 3:
                    token.cancel()
        await asyncio.sleep(0.1)
        return len(produced)

    assert run(main()) < 20


def test_stock_assistant_agents_on_the_latent_client_match_the_text_team(qwen, text_run):
    client = AVPChatCompletionClient(qwen, max_new_tokens=TOKENS)
    result, calls = recorded(qwen, round_robin(stock_agents(client)).run(task=TASK))
    text_messages, text_calls = text_run
    assert [m.content for m in replies(result)] == [m.content for m in text_messages]
    # each agent's second turn extends its first conversation: exact prefix reuse
    assert all(c.reused_tokens > 0 for c in calls[3:])
    assert sum(c.prefilled_tokens for c in calls) < sum(c.prefilled_tokens for c in text_calls)


# -- the benchmark chain ------------------------------------------------------------------------


def test_run_chain_text_and_latent(qwen):
    from avp_suite.chains import autogen as chain

    workload = ChainWorkload.for_tokenizer(
        qwen.tokenizer, agents=3, doc_tokens=300, answer_tokens=8
    )
    text = measure("autogen", chain, qwen, workload, latent=False)
    latent = measure("autogen", chain, qwen, workload, latent=True)
    assert len(text.outputs) == len(latent.outputs) == 3
    assert text.outputs[0] == latent.outputs[0]  # same first prompt
    assert text.reused_tokens == 0 and latent.reused_tokens > 0
    assert latent.prefilled_tokens * 2 < text.prefilled_tokens
    assert len(latent.ttft_s) == 3
    assert run_chain(qwen, workload, latent=True) == latent.outputs  # deterministic
