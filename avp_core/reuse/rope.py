"""Move cached keys to new positions: rotate them by the position shift (rotary embeddings).

A RoPE key at position ``p`` is ``R(p) k``, and ``R(a) R(b) = R(a + b)``, so rotating it by
``R(q - p)`` gives exactly the key the model would have computed at ``q`` from the same
hidden state. That holds when the rotation angle is a fixed frequency times the position,
over the whole head: the ``default``, ``linear``, ``llama3`` and ``yarn`` RoPE types of the
Llama, Qwen2, Qwen3 and Mistral families. Anything else cannot be shifted, so segment reuse
falls back to dense prefill for it.
"""

from __future__ import annotations

from typing import Any

import torch

FAMILIES = frozenset({"llama", "qwen2", "qwen3", "mistral"})
ROPE_TYPES = frozenset({"default", "linear", "llama3", "yarn"})


class KeyShifter:
    """Rotates a model's cached keys by a position shift."""

    def __init__(self, inv_freq: torch.Tensor) -> None:
        self.inv_freq = inv_freq.double().cpu()

    @classmethod
    def for_model(cls, model: Any) -> tuple[KeyShifter | None, str]:
        """The shifter for ``model``, or None and why its keys cannot be moved."""
        config = model.config.get_text_config()
        family = getattr(config, "model_type", "")
        if family not in FAMILIES:
            return None, f"{family or 'this'} model family is not supported for segment reuse"
        rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
        rope_type = getattr(rotary, "rope_type", None)
        inv_freq = getattr(rotary, "inv_freq", None)
        if rope_type not in ROPE_TYPES or not isinstance(inv_freq, torch.Tensor):
            return None, f"rotary embedding type {rope_type!r} cannot be shifted exactly"
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // (
            config.num_attention_heads
        )
        if inv_freq.numel() * 2 != head_dim:
            return None, "partial rotary embeddings cannot be shifted exactly"
        return cls(inv_freq), ""

    def shift(self, keys: torch.Tensor, delta: int) -> torch.Tensor:
        """``keys`` ([..., positions, head_dim]) moved by ``delta`` positions (a new tensor)."""
        if delta == 0:
            return keys
        angles = self.inv_freq * float(delta)
        cos = torch.cat([angles.cos(), angles.cos()]).to(keys.device, torch.float32)
        sin = torch.cat([angles.sin(), angles.sin()]).to(keys.device, torch.float32)
        half = keys.shape[-1] // 2
        original = keys.float()
        rotated_half = torch.cat([-original[..., half:], original[..., :half]], dim=-1)
        return (original * cos + rotated_half * sin).to(keys.dtype)
