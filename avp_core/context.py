"""AVPContext: an immutable handle on an agent's attention state (KV-cache) plus its text.

A context records exactly which positions its KV covers: ``sequence`` holds one entry per
position, the token id, or :data:`LATENT` for a latent-thinking step (which has no token).
Nothing in avp-suite writes into a context's tensors; new calls build new cache objects
around them (zero-copy) and grow those by concatenation.
"""

from __future__ import annotations

import json
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import AVPError, DecodeError, InvalidRequestError
from .identity import ModelIdentity

if TYPE_CHECKING:
    import torch

    from .wire.codec import Message
    from .wire.signing import Key

LATENT = -1
"""Marker in :attr:`AVPContext.sequence` for a latent step (a position with no token id)."""
_WIRE_LATENT = 0xFFFFFFFF
CONTEXT_ID = "avp_suite.context_id"
"""The ``extra`` entry of an AVP message that holds its context's id."""


_TRUSTED: weakref.WeakSet[AVPContext] = weakref.WeakSet()


def mark_trusted(context: AVPContext) -> AVPContext:
    """Record that ``context``'s KV is known to belong to its tokens and model: a connector in
    this process computed it, or checked it (see :func:`is_trusted`). Returns ``context``."""
    _TRUSTED.add(context)
    return context


def is_trusted(context: AVPContext) -> bool:
    """Whether a connector in this process made or checked ``context``. Contexts decoded from
    bytes or built by hand are not, until a connector verifies them before reusing them."""
    return context in _TRUSTED


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two id sequences."""
    import numpy as np

    n = min(len(a), len(b))
    if n == 0:
        return 0
    left = np.asarray(a[:n], dtype=np.int64)
    right = np.asarray(b[:n], dtype=np.int64)
    mismatch = np.flatnonzero(left != right)
    return int(mismatch[0]) if mismatch.size else n


@dataclass(frozen=True, eq=False, repr=False)
class AVPContext:
    """Immutable KV-cache handle: positions, tensors, producing model and what was said."""

    sequence: tuple[int, ...]
    kv: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    identity: ModelIdentity | None
    text: str | None = None
    source_agent: str = ""
    created_at: float = field(default_factory=time.time)
    last_hidden: torch.Tensor | None = None
    context_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sequence", tuple(int(t) for t in self.sequence))
        object.__setattr__(self, "kv", tuple((k, v) for k, v in self.kv))
        lengths = {k.shape[-2] for k, _ in self.kv}
        if self.kv and lengths != {len(self.sequence)}:
            raise InvalidRequestError(
                f"KV covers {sorted(lengths)} positions but the context records "
                f"{len(self.sequence)}"
            )

    @property
    def token_ids(self) -> tuple[int, ...]:
        """Ids of the token positions whose K/V this context holds (latent steps excluded)."""
        return tuple(t for t in self.sequence if t != LATENT)

    @property
    def latent_steps(self) -> int:
        return sum(1 for t in self.sequence if t == LATENT)

    @property
    def seq_len(self) -> int:
        """Positions covered: ``len(token_ids) + latent_steps``."""
        return len(self.sequence)

    @property
    def nbytes(self) -> int:
        size = sum(t.numel() * t.element_size() for pair in self.kv for t in pair)
        if self.last_hidden is not None:
            size += self.last_hidden.numel() * self.last_hidden.element_size()
        return size

    @property
    def num_layers(self) -> int:
        return len(self.kv)

    @property
    def dtype(self) -> str:
        return str(self.kv[0][0].dtype).removeprefix("torch.") if self.kv else ""

    def summary(self) -> dict[str, Any]:
        """A compact JSON-able description (never tensors)."""
        return {
            "context_id": self.context_id,
            "source_agent": self.source_agent,
            "model": self.identity.short() if self.identity else None,
            "seq_len": self.seq_len,
            "tokens": len(self.sequence) - self.latent_steps,
            "latent_steps": self.latent_steps,
            "layers": self.num_layers,
            "dtype": self.dtype,
            "bytes": self.nbytes,
            "created_at": round(self.created_at, 3),
        }

    def __repr__(self) -> str:
        s = self.summary()
        latent = f", latent_steps={s['latent_steps']}" if s["latent_steps"] else ""
        return (
            f"AVPContext(id={s['context_id'][:8]}, seq_len={s['seq_len']}{latent}, "
            f"layers={s['layers']}, {s['dtype']}, {s['bytes'] / 1e6:.2f} MB, model={s['model']})"
        )

    def to_json(self) -> str:
        return json.dumps(self.summary())

    def to_bytes(self, *, compression: int | None = None, key: Key | None = None) -> bytes:
        """Serialize through the AVP wire codec (a KV_CACHE message with our extensions),
        signed with ``key`` (default: ``$AVP_SUITE_KEY`` when set)."""
        from . import wire
        from .wire.signing import default_key

        return wire.encode_kv_cache(
            self.kv, compression=compression, key=default_key(key), **self.wire_metadata()
        )

    def wire_metadata(self) -> dict[str, Any]:
        """The metadata :meth:`to_bytes` encodes with the KV (``encode_kv_cache`` keywords);
        its ``extra`` map is a new dict a caller may add to."""
        return {
            "source_agent_id": self.source_agent,
            "model_id": self.identity.model_id if self.identity else "",
            "hidden_dim": self.identity.hidden_size if self.identity else 0,
            "token_ids": [_WIRE_LATENT if t == LATENT else t for t in self.sequence],
            "identity": self.identity,
            "latent_steps": self.latent_steps,
            "text": self.text,
            "created_at": self.created_at,
            "last_hidden": self.last_hidden,
            "extra": {CONTEXT_ID: self.context_id},
        }

    @classmethod
    def from_bytes(
        cls,
        data: bytes | bytearray | memoryview,
        device: str = "cpu",
        *,
        key: Key | None = None,
        **decode_options: Any,
    ) -> AVPContext:
        """Rebuild a context from :meth:`to_bytes` output (or any AVP KV message).

        With ``key`` (default: ``$AVP_SUITE_KEY`` when set) only messages signed with it are
        accepted. Every problem with the bytes is a :class:`~avp_core.errors.DecodeError`.
        The context is not trusted: a connector verifies its KV before the first reuse.
        """
        from . import wire
        from .wire.signing import default_key

        return cls.from_message(wire.decode(data, key=default_key(key), **decode_options), device)

    @classmethod
    def from_message(cls, message: Message, device: str = "cpu") -> AVPContext:
        """The context a decoded AVP KV message holds (see :meth:`from_bytes`); its tensors
        are the message's (views of its bytes unless it was decoded with a copy)."""
        meta = message.metadata
        kv = message.kv_cache()
        sequence = tuple(LATENT if t == _WIRE_LATENT else t for t in meta.token_ids)
        if not sequence and kv:
            raise DecodeError("KV message has no token_ids extension, so it cannot be a context")
        if sum(1 for t in sequence if t == LATENT) != meta.latent_steps:
            raise DecodeError("latent_steps disagrees with the latent positions in token_ids")
        lengths = sorted({k.shape[-2] for k, _ in kv})
        if lengths != [len(sequence)]:
            raise DecodeError(
                f"token_ids record {len(sequence)} positions but the KV layers hold {lengths}"
            )
        try:
            if device != "cpu":
                kv = [(k.to(device), v.to(device)) for k, v in kv]
            hidden = message.last_hidden()
            return cls(
                sequence=sequence,
                kv=tuple(kv),
                identity=meta.identity,
                text=meta.text,
                source_agent=meta.source_agent_id,
                created_at=meta.created_at,
                last_hidden=hidden.reshape(1, -1).to(device) if hidden is not None else None,
                context_id=meta.extra.get(CONTEXT_ID) or uuid.uuid4().hex,
            )
        except DecodeError:
            raise
        except (AVPError, RuntimeError, ValueError, TypeError) as exc:
            raise DecodeError(f"message does not make a valid context: {exc}") from exc
