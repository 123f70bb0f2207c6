"""Handshake: decide how two agents may exchange context, with a reason a person can read."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .identity import ModelIdentity


class Mode(enum.Enum):
    """How a context may cross from one model to another."""

    LATENT = "latent"
    """Same weights, tokenizer and chat template: KV is reused as is (cast if dtypes differ)."""
    HYBRID = "hybrid"
    """Same tokenizer, other weights: text now (projected latent transfer is future work)."""
    JSON = "json"
    """Different tokenizers or unknown peer: text only."""


@dataclass(frozen=True)
class Handshake:
    """The outcome of :func:`resolve`: a mode and why."""

    mode: Mode
    reason: str

    @property
    def latent(self) -> bool:
        return self.mode is Mode.LATENT

    def to_dict(self) -> dict[str, str]:
        return {"mode": self.mode.value, "reason": self.reason}


def resolve(local: ModelIdentity | None, remote: ModelIdentity | None) -> Handshake:
    """Resolve the exchange mode between the receiving (``local``) and sending (``remote``) model.

    LATENT when weights, tokenizer and template fingerprints all match (dtype may differ);
    HYBRID when only the tokenizer matches; JSON otherwise.
    """
    if local is None or remote is None:
        side = "local" if local is None else "remote"
        return Handshake(Mode.JSON, f"the {side} model identity is unknown; using text")
    if local.architecture != remote.architecture:
        same_tokenizer = local.tokenizer_fingerprint == remote.tokenizer_fingerprint
        mode = Mode.HYBRID if same_tokenizer else Mode.JSON
        return Handshake(
            mode,
            f"architectures differ ({_arch(remote)} -> {_arch(local)})"
            + ("; the tokenizer is shared" if same_tokenizer else "")
            + "; using text",
        )
    if local.tokenizer_fingerprint != remote.tokenizer_fingerprint:
        return Handshake(Mode.JSON, "tokenizers differ; using text")
    if local.weights_fingerprint != remote.weights_fingerprint:
        return Handshake(
            Mode.HYBRID, "same architecture and tokenizer but different weights; using text"
        )
    if local.template_fingerprint != remote.template_fingerprint:
        return Handshake(Mode.HYBRID, "same weights but different chat templates; using text")
    cast = "" if local.dtype == remote.dtype else f" (KV cast {remote.dtype} -> {local.dtype})"
    return Handshake(Mode.LATENT, f"same weights, tokenizer and chat template{cast}")


def _arch(identity: ModelIdentity) -> str:
    return (
        f"{identity.model_type} L{identity.num_layers} H{identity.hidden_size} "
        f"KV{identity.num_kv_heads}x{identity.head_dim} V{identity.vocab_size}"
    )
