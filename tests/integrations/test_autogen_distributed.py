"""AutoGen's distributed runtime for real (examples/services_autogen_grpc.py): a gRPC host and
two worker processes, each hosting an AVPAssistantAgent. The planner's LatentMessage crosses
the runtime as text plus a reference; its KV goes through Redis, and the critic in the other
process reuses it and says what the same agents say in one process."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest
from autogen_agentchat.messages import TextMessage
from autogen_core import CancellationToken
from services import redis_url, require

pytestmark = pytest.mark.services
require("autogen_ext.runtimes.grpc", "'autogen-ext[grpc]'")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "services_autogen_grpc.py"


def _example():
    spec = importlib.util.spec_from_file_location("services_autogen_grpc", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workers_exchange_latent_messages_through_grpc_and_a_redis_store(qwen):
    example = _example()
    task = "Plan a three-day trip to Lisbon with a train ride to Sintra."
    outcome = asyncio.run(example.run(task, redis_url()))

    async def in_one_process():
        planner, critic = example.assistant("planner", qwen), example.assistant("critic", qwen)
        asked = TextMessage(content=task, source="user")
        plan = (await planner.on_messages([asked], CancellationToken())).chat_message
        return (await critic.on_messages([plan], CancellationToken())).chat_message

    local = asyncio.run(in_one_process())
    # the critic in the other process continued the planner's KV, read from Redis
    assert outcome.metadata["avp.mode"] == "latent"
    assert int(outcome.metadata["avp.reused_tokens"]) == outcome.plan_positions > 0
    # the runtime carried text and a reference only
    assert outcome.sent_bytes < 2000
    # and the answer is what the same agents say in one process
    assert outcome.critique == local.content
    assert outcome.metadata["avp.reused_tokens"] == local.metadata["avp.reused_tokens"]
