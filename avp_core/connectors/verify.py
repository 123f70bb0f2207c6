"""Check a context's KV before a model reuses it: shapes, dtype, finiteness, and a spot check.

A context's identity is self-declared, so KV from bytes (a message, a checkpoint, a store)
is checked once before its first reuse:

1. every layer's K and V have the shapes this model's cache holds, one float dtype and the
   context's length (wrong shapes would crash attention);
2. every value is finite (NaN or inf would poison every later token);
3. a spot check: ``SPOT_TOKENS`` consecutive token positions at a random place are computed
   again from the context's own KV before them, and every layer's K and V there must match
   what the context claims within a tolerance. KV from other weights or other tokens fails
   it; KV consistent at every position is exactly the KV of those tokens.

The spot check costs one decode step (a forward of one token over the context), a fixed
cost against a prefill that grows with the context. It samples one place, so it catches a
context that is wrong at a random place, not one forged at a few chosen positions: a
signature (``key``) is the guarantee.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..context import LATENT, AVPContext

SPOT_TOKENS = 1
"""Positions computed again by the spot check (one: a forward of two or more tokens costs
about 40% more on CPU and finds no more, since where it looks is what matters)."""
FLOATS = (torch.float32, torch.float16, torch.bfloat16)
_RANDOM = random.SystemRandom()

LayerShapes = Sequence[tuple[int, int, int]]
"""Per layer: KV heads, key dim, value dim."""


def check_tensors(context: AVPContext, shapes: LayerShapes) -> str | None:
    """Why ``context``'s tensors cannot be this model's KV (shapes, dtype, NaN), or None."""
    if len(context.kv) != len(shapes):
        return f"it has {len(context.kv)} layers, the model {len(shapes)}"
    size = context.seq_len
    for index, ((k, v), (heads, key_dim, value_dim)) in enumerate(zip(context.kv, shapes)):
        want_k, want_v = (1, heads, size, key_dim), (1, heads, size, value_dim)
        if tuple(k.shape) != want_k or tuple(v.shape) != want_v:
            return (
                f"layer {index} holds K {tuple(k.shape)} and V {tuple(v.shape)}; "
                f"the model needs {want_k} and {want_v}"
            )
        if k.dtype not in FLOATS or v.dtype != k.dtype:
            return f"layer {index} holds {k.dtype} and {v.dtype}, not one float dtype"
        # a sum is finite only if every term is (a float32 sum of finite KV never overflows);
        # 8x cheaper than isfinite(), which writes a mask as large as the tensor
        if not torch.isfinite(k.sum(dtype=torch.float32) + v.sum(dtype=torch.float32)):
            return f"layer {index} holds NaN or infinite values"
    return None


def spot_window(sequence: Sequence[int], rng: random.Random = _RANDOM) -> tuple[int, int]:
    """A random ``[start, end)`` of up to SPOT_TOKENS consecutive token (not latent) positions."""
    runs, start = [], None
    for index, token in enumerate([*sequence, LATENT]):
        if token != LATENT and start is None:
            start = index
        elif token == LATENT and start is not None:
            runs.append((start, index))
            start = None
    if not runs:
        return 0, 0
    width = min(SPOT_TOKENS, max(end - begin for begin, end in runs))
    starts = [range(begin, end - width + 1) for begin, end in runs if end - begin >= width]
    first = rng.choice([p for span in starts for p in span])
    return first, first + width


def tolerance(*dtypes: torch.dtype) -> float:
    """Largest relative difference accepted: recomputing in half precision rounds more."""
    return 1e-3 if all(d == torch.float32 for d in dtypes) else 5e-2


def spot_check(
    context: AVPContext,
    fork: Callable[[AVPContext, int], Any],
    forward: Callable[[Sequence[int], Any], Any],
    dtype: torch.dtype,
    rng: random.Random = _RANDOM,
) -> str | None:
    """Recompute a random window of ``context`` from its own KV before it; say where it
    differs, or None. ``fork(context, n)`` makes a cache of its first n positions and
    ``forward(ids, cache)`` runs ids through the model, growing the cache."""
    start, end = spot_window(context.sequence, rng)
    if start == end:
        return None
    limit = tolerance(dtype, context.kv[0][0].dtype)
    with torch.inference_mode():
        cache = fork(context, start)
        forward(context.sequence[start:end], cache)
        for index, (layer, (k, v)) in enumerate(zip(cache.layers, context.kv)):
            for name, mine, theirs in (("K", layer.keys, k), ("V", layer.values, v)):
                got = mine[:, :, start:end].float().cpu()
                claimed = theirs[:, :, start:end].float().cpu()
                error = float((got - claimed).abs().max()) / (float(got.abs().max()) + 1e-6)
                if error > limit:
                    where = f"{start}" if end - start == 1 else f"{start}-{end - 1}"
                    return (
                        f"layer {index} {name} at position {where} differs from this model's "
                        f"by {error:.2g} (relative; at most {limit:g} allowed): the KV was "
                        "not computed by this model from these tokens"
                    )
    return None
