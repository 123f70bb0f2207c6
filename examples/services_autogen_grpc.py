"""Two AVPAssistantAgents in separate processes on AutoGen's distributed (gRPC) runtime.

The planner's reply crosses the runtime as text plus a small reference; its KV goes through a
Redis store both workers reach, and the critic continues it. Needs Redis on 127.0.0.1:6379
(or AVP_SUITE_REDIS) and ``pip install "autogen-ext[grpc]" "avp-suite[redis]"``.

    python examples/services_autogen_grpc.py               # host + two worker processes
    python examples/services_autogen_grpc.py ROLE HOST STORE PREFIX   # one worker
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid

from autogen_agentchat.messages import TextMessage
from autogen_core import AgentId, MessageContext, RoutedAgent, rpc
from autogen_core import try_get_known_serializers_for_type as serializers_for
from avp_autogen import (
    AVPAssistantAgent,
    LatentMessage,
    LatentMessageSerializer,
    add_latent_serializers,
)
from pydantic import BaseModel

from avp_core import ContextStore, HuggingFaceConnector
from avp_core.store.network import RedisBackend

REDIS = os.environ.get("AVP_SUITE_REDIS", "redis://127.0.0.1:6379/0")
ROLES = {
    "planner": "You are the planner. Write the plan.",
    "critic": "You are the critic. Find the biggest risk in the plan.",
}


class Task(BaseModel):
    text: str


class Outcome(BaseModel):
    plan: str
    plan_positions: int
    sent_bytes: int  # what the runtime carried for the planner's LatentMessage
    critique: str
    metadata: dict[str, str]


def assistant(name: str, llm: HuggingFaceConnector) -> AVPAssistantAgent:
    return AVPAssistantAgent(name, connector=llm, system_message=ROLES[name], max_new_tokens=12)


class Critic(RoutedAgent):
    def __init__(self, llm: HuggingFaceConnector) -> None:
        super().__init__("critic")
        self.agent = assistant("critic", llm)

    @rpc
    async def on_plan(self, message: LatentMessage, ctx: MessageContext) -> LatentMessage:
        response = await self.agent.on_messages([message], ctx.cancellation_token)
        return response.chat_message  # type: ignore[return-value]


class Planner(RoutedAgent):
    def __init__(self, llm: HuggingFaceConnector) -> None:
        super().__init__("planner")
        self.agent = assistant("planner", llm)

    @rpc
    async def on_task(self, message: Task, ctx: MessageContext) -> Outcome:
        asked = TextMessage(content=message.text, source="user")
        plan = (await self.agent.on_messages([asked], ctx.cancellation_token)).chat_message
        assert isinstance(plan, LatentMessage) and plan.context is not None
        critique = await self.send_message(plan, AgentId("critic", "default"))
        return Outcome(
            plan=plan.content,
            plan_positions=plan.context.seq_len,
            sent_bytes=len(LatentMessageSerializer().serialize(plan)),
            critique=critique.content,
            metadata=critique.metadata,
        )


async def worker(role: str, host: str, url: str, prefix: str) -> None:
    """One worker process: the KV store, the model, one agent type on the runtime."""
    from autogen_ext.runtimes.grpc import GrpcWorkerAgentRuntime

    LatentMessage.store = ContextStore(backend=RedisBackend(url, prefix=prefix))
    llm = HuggingFaceConnector.from_pretrained("tiny-qwen2")
    runtime = GrpcWorkerAgentRuntime(host_address=host)
    await runtime.start()
    kind = Planner if role == "planner" else Critic
    await kind.register(runtime, role, lambda: kind(llm))
    for message_type in (Task, Outcome):
        runtime.add_message_serializer(serializers_for(message_type))
    add_latent_serializers(runtime)  # after register: LatentMessages go by reference
    print("READY", flush=True)
    await runtime.stop_when_signal()


async def run(task: str, url: str = REDIS) -> Outcome:
    """Start a host and the two workers, send the planner a task, return what came back."""
    from autogen_ext.runtimes.grpc import GrpcWorkerAgentRuntime, GrpcWorkerAgentRuntimeHost

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    prefix = f"avp-example:{uuid.uuid4().hex[:8]}:"
    host = GrpcWorkerAgentRuntimeHost(address=address)
    host.start()
    workers, client = [], None
    try:
        for role in ("critic", "planner"):
            process = await asyncio.create_subprocess_exec(
                sys.executable, __file__, role, address, url, prefix,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            workers.append(process)
            assert process.stdout is not None and process.stderr is not None
            if (await asyncio.wait_for(process.stdout.readline(), 120)).strip() != b"READY":
                raise RuntimeError((await process.stderr.read()).decode()[-3000:])
        client = GrpcWorkerAgentRuntime(host_address=address)
        await client.start()
        for message_type in (Task, Outcome):
            client.add_message_serializer(serializers_for(message_type))
        planner = AgentId("planner", "default")
        return await asyncio.wait_for(client.send_message(Task(text=task), planner), 120)
    finally:
        if client is not None:
            await asyncio.wait_for(client.stop(), 30)
        for process in workers:
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), 30)
        await host.stop(grace=1)
        RedisBackend(url, prefix=prefix).drop()  # the example leaves nothing in Redis


if __name__ == "__main__":
    if len(sys.argv) == 5:
        asyncio.run(worker(*sys.argv[1:5]))
    else:
        outcome = asyncio.run(run("Plan a three-day trip to Lisbon with a train to Sintra."))
        print(f"the runtime carried {outcome.sent_bytes} bytes for the plan")
        print(
            f"critic in another process: {outcome.metadata['avp.mode']}, reused "
            f"{outcome.metadata['avp.reused_tokens']} of the plan's {outcome.plan_positions} "
            "positions from Redis"
        )
