"""AutoGen's distributed runtime for real: a gRPC host and two worker processes, each hosting
an AVPAssistantAgent. The planner's LatentMessage crosses the runtime as text plus a
reference; its KV goes through a Redis store, and the critic in the other process reuses it."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
import textwrap

import pytest
from autogen_agentchat.messages import TextMessage
from autogen_core import AgentId, CancellationToken
from avp_autogen import AVPAssistantAgent
from services import redis_url, require, unique_name

from avp_core.store.network import RedisBackend

pytestmark = pytest.mark.services
grpc_runtime = require("autogen_ext.runtimes.grpc", "'autogen-ext[grpc]'")

WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from autogen_agentchat.messages import TextMessage
    from autogen_core import AgentId, MessageContext, RoutedAgent, rpc
    from autogen_core import try_get_known_serializers_for_type
    from pydantic import BaseModel
    from avp_autogen import AVPAssistantAgent, LatentMessage, LatentMessageSerializer
    from avp_autogen import add_latent_serializers
    from avp_core import ContextStore, HuggingFaceConnector
    from avp_core.store.network import RedisBackend

    ROLES = {"planner": "You are the planner. Write the plan.",
             "critic": "You are the critic. Find the biggest risk in the plan."}

    class Task(BaseModel):
        text: str

    class Outcome(BaseModel):
        plan: str
        plan_tokens: int
        sent_bytes: int
        critique: str
        metadata: dict[str, str]

    def agent(name, llm):
        return AVPAssistantAgent(name, connector=llm, system_message=ROLES[name],
                                 max_new_tokens=12)

    class Critic(RoutedAgent):
        def __init__(self, llm):
            super().__init__("critic")
            self.agent = agent("critic", llm)

        @rpc
        async def on_plan(self, message: LatentMessage, ctx: MessageContext) -> LatentMessage:
            return (await self.agent.on_messages([message], ctx.cancellation_token)).chat_message

    class Planner(RoutedAgent):
        def __init__(self, llm):
            super().__init__("planner")
            self.agent = agent("planner", llm)

        @rpc
        async def on_task(self, message: Task, ctx: MessageContext) -> Outcome:
            asked = TextMessage(content=message.text, source="user")
            plan = (await self.agent.on_messages([asked], ctx.cancellation_token)).chat_message
            sent = len(LatentMessageSerializer().serialize(plan))
            critique = await self.send_message(plan, AgentId("critic", "default"))
            return Outcome(plan=plan.content, plan_tokens=plan.context.seq_len,
                           sent_bytes=sent, critique=critique.content,
                           metadata=critique.metadata)

    async def main(role, host, url, prefix):
        from autogen_ext.runtimes.grpc import GrpcWorkerAgentRuntime

        LatentMessage.store = ContextStore(backend=RedisBackend(url, prefix=prefix))
        llm = HuggingFaceConnector.from_pretrained("tiny-qwen2")
        runtime = GrpcWorkerAgentRuntime(host_address=host)
        await runtime.start()
        kind = Planner if role == "planner" else Critic
        await kind.register(runtime, role, lambda: kind(llm))
        for message_type in (Task, Outcome):
            runtime.add_message_serializer(try_get_known_serializers_for_type(message_type))
        add_latent_serializers(runtime)
        print("READY", flush=True)
        await runtime.stop_when_signal()

    if __name__ == "__main__":
        asyncio.run(main(*sys.argv[1:5]))
    """
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _local_run(qwen, task, worker):
    """The same two agents in one process, the context handed over live."""
    planner = AVPAssistantAgent(
        "planner", connector=qwen, system_message=worker.ROLES["planner"], max_new_tokens=12
    )
    critic = AVPAssistantAgent(
        "critic", connector=qwen, system_message=worker.ROLES["critic"], max_new_tokens=12
    )

    async def run():
        asked = TextMessage(content=task, source="user")
        plan = (await planner.on_messages([asked], CancellationToken())).chat_message
        return (await critic.on_messages([plan], CancellationToken())).chat_message

    return asyncio.run(run())


async def _distributed_run(script, task, worker, *store):
    host_address = f"127.0.0.1:{_free_port()}"
    host = grpc_runtime.GrpcWorkerAgentRuntimeHost(address=host_address)
    host.start()
    workers = []
    client = None
    try:
        for role in ("critic", "planner"):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(script),
                role,
                host_address,
                *store,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            workers.append(process)
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            if line.strip() != b"READY":
                raise AssertionError((await process.stderr.read()).decode()[-3000:])
        client = grpc_runtime.GrpcWorkerAgentRuntime(host_address=host_address)
        await client.start()
        for message_type in (worker.Task, worker.Outcome):
            client.add_message_serializer(
                __import__("autogen_core").try_get_known_serializers_for_type(message_type)
            )
        return await asyncio.wait_for(
            client.send_message(worker.Task(text=task), AgentId("planner", "default")), 120
        )
    finally:
        if client is not None:
            await asyncio.wait_for(client.stop(), 30)
        for process in workers:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except asyncio.TimeoutError:
                    process.kill()
        await host.stop(grace=1)


def test_workers_exchange_latent_messages_through_grpc_and_a_redis_store(qwen, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    spec = importlib.util.spec_from_file_location("avp_worker", script)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    url, prefix = redis_url(), unique_name() + ":"
    task = "Plan a three-day trip to Lisbon with a train ride to Sintra."
    try:
        outcome = asyncio.run(_distributed_run(script, task, worker, url, prefix))
    finally:
        backend = RedisBackend(url, prefix=prefix)
        backend.delete([entry.key for entry in backend.entries()])
    local = _local_run(qwen, task, worker)

    # the critic in the other process continued the planner's KV, read from Redis
    assert outcome.metadata["avp.mode"] == "latent"
    assert int(outcome.metadata["avp.reused_tokens"]) == outcome.plan_tokens > 0
    # the runtime carried text and a reference only
    assert outcome.sent_bytes < 2000
    # and the answer is what the same agents say in one process
    assert outcome.critique == local.content
    assert outcome.metadata["avp.reused_tokens"] == local.metadata["avp.reused_tokens"]
