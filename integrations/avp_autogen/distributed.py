"""LatentMessages through AutoGen's distributed (gRPC) runtime, KV through a shared store.

AutoGen's default serializer for a pydantic message would drop a :class:`LatentMessage`'s
context. :class:`LatentMessageSerializer` sends what :meth:`LatentMessage.dump` writes
instead: the text and a small reference, while the KV goes to :attr:`LatentMessage.store`
(set it to a store every worker reaches, such as Redis). The receiving worker loads the KV
from that store when its agent first asks for it, and verifies it before reuse.
"""

from __future__ import annotations

import json
from typing import Any

from avp_core.errors import DecodeError

from .messages import LatentMessage

JSON = "application/json"


class LatentMessageSerializer:
    """An ``autogen_core`` message serializer for :class:`LatentMessage` (JSON of its dump)."""

    data_content_type = JSON
    type_name = LatentMessage.__name__

    def serialize(self, message: LatentMessage) -> bytes:
        return json.dumps(message.dump()).encode()

    def deserialize(self, payload: bytes) -> LatentMessage:
        try:
            return LatentMessage.load(json.loads(payload))
        except ValueError as exc:  # JSON or pydantic validation
            raise DecodeError(f"not a dumped LatentMessage: {exc}") from exc


def add_latent_serializers(runtime: Any) -> None:
    """Make ``runtime`` (a ``GrpcWorkerAgentRuntime``) send LatentMessages by reference.

    Call it after registering the agents (``register`` installs AutoGen's own serializer for
    the message types its handlers take, which this one replaces), in every worker that
    sends or receives them.
    """
    runtime.add_message_serializer(LatentMessageSerializer())
