"""Latent thinking (approximate, LatentMAS-style): feed hidden states back as input embeddings.

A model's last-layer (normed) hidden state ``h`` lives in output space; the next input must
live in input-embedding space. The realignment matrix maps one to the other:

    W_a = (W_out^T W_out + lambda I)^-1 W_out^T W_in

(the ridge-regression map that sends the output head's view of ``h`` onto the input
embeddings), and the result is rescaled to the mean input-embedding norm. With tied
embeddings ``W_a`` is the identity, so only the rescale applies. This is *approximate*: a
latent step is not a token, and the output of a pipeline that thinks differs from one that
writes text. Computed once per model in fp32 and cached.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_RIDGE = 1e-4

_cache: weakref.WeakKeyDictionary[Any, Realignment] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass(frozen=True)
class Realignment:
    """``matrix`` (``[hidden, hidden]``, None when tied) and the target embedding norm."""

    matrix: torch.Tensor | None
    target_norm: torch.Tensor

    def apply(self, hidden: torch.Tensor) -> torch.Tensor:
        """Map output-space hidden states ``[..., hidden]`` to input-embedding space."""
        mapped = hidden.float() if self.matrix is None else hidden.float() @ self.matrix
        norm = mapped.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return mapped * (self.target_norm / norm)


def realignment(model: Any, ridge: float = DEFAULT_RIDGE) -> Realignment:
    """The (cached) realignment of ``model``, computed in fp32 on the model's device."""
    with _lock:
        cached = _cache.get(model)
        if cached is not None:
            return cached
        w_in = model.get_input_embeddings().weight.detach()
        w_out = model.get_output_embeddings().weight.detach()
        target_norm = w_in.float().norm(dim=-1).mean()
        if w_in.data_ptr() == w_out.data_ptr():
            result = Realignment(None, target_norm)
        else:
            w_in32, w_out32 = w_in.float(), w_out.float()
            gram = w_out32.T @ w_out32
            scale = gram.diagonal().mean().clamp_min(1e-12)
            eye = torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype)
            matrix = torch.linalg.solve(gram + ridge * scale * eye, w_out32.T @ w_in32)
            result = Realignment(matrix, target_norm)
        _cache[model] = result
        return result
