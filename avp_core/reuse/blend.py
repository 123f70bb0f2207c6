"""Blended prefill: one forward pass that computes only what cannot be reused.

After the exact prefix, every prompt position is either covered by a reused segment (KV
moved from another context, optionally offset-corrected by anchors) or must be computed
(the gaps between segments, the last prompt position, segments with no confident anchor and
the recompute fraction). The cache gets the reused KV; the computed positions run through
the model in one pass, with their true position ids and a mask that lets each attend to
every position before it, reused or computed. The cache is then put back in position order.
With everything computed this is dense prefill.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .anchors import AnchorPool
from .index import Segment
from .policy import SegmentReuse
from .rope import KeyShifter

PROBE_LAYER = 1
"""The layer whose dense KV chooses what to recompute (CacheBlend uses an early layer)."""
_HEAD_TOKENS = 64


@dataclass
class BlendResult:
    logits: torch.Tensor
    computed: int
    approximate: int
    recomputed: int
    notes: list[str]


class _ProbeDone(Exception):
    pass


def blended_prefill(
    model: Any,
    cache: Any,
    sequence: Sequence[int],
    reused: int,
    segments: Sequence[Segment],
    *,
    settings: SegmentReuse,
    shifter: KeyShifter,
    anchors: AnchorPool | None,
    cache_arg: str,
) -> BlendResult:
    """Fill ``cache`` (which holds the exact prefix, ``reused`` positions) for all of
    ``sequence`` and return the last position's logits with what was computed."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    layers = list(cache.layers)
    notes: list[str] = []
    moved = [_moved(segment, shifter, device, dtype) for segment in segments]
    dense_segments: set[int] = set()
    if anchors is not None and settings.anchors:
        dense_segments = _apply_anchors(anchors, settings, sequence, segments, moved, dtype)
        if dense_segments:
            notes.append(
                f"{len(dense_segments)} segment(s) had no close enough anchor: computed densely "
                "and kept as anchors"
            )

    length = len(sequence)
    covered = torch.zeros(length, dtype=torch.bool)
    for i, segment in enumerate(segments):
        if i not in dense_segments:
            covered[segment.start : segment.end] = True
    covered[length - 1] = False
    reusable = torch.nonzero(covered).flatten()
    count = min(len(reusable), math.ceil(settings.recompute * len(reusable) - 1e-9))
    approx_keys = _gather(moved, segments, dense_segments, reusable, 0)
    approx_values = _gather(moved, segments, dense_segments, reusable, 1)
    if 0 < count < len(reusable):
        probe_keys, probe_values = _probe(model, cache, sequence, reused, cache_arg, device)
        offset = reusable - reused
        deviation = _deviation(approx_keys, approx_values, probe_keys, probe_values, offset)
        for layer in range(len(probe_keys)):  # the probe's layers are exact: use them
            approx_keys[layer] = probe_keys[layer][:, :, offset]
            approx_values[layer] = probe_values[layer][:, :, offset]
        chosen = reusable[torch.topk(deviation, count).indices]
        covered[chosen] = False
    elif count == len(reusable) and count:
        covered[reusable] = False
    keep = covered[reusable]
    kept_positions = reusable[keep]
    computed_positions = torch.nonzero(~covered[reused:]).flatten() + reused

    for layer, cache_layer in enumerate(layers):
        kept_keys = approx_keys[layer][:, :, keep]
        kept_values = approx_values[layer][:, :, keep]
        if cache_layer.keys is None or not cache_layer.is_initialized:
            cache_layer.lazy_initialization(kept_keys, kept_values)
            cache_layer.keys, cache_layer.values = kept_keys, kept_values
        else:
            cache_layer.keys = torch.cat([cache_layer.keys, kept_keys], dim=-2)
            cache_layer.values = torch.cat([cache_layer.values, kept_values], dim=-2)

    key_positions = torch.cat([torch.arange(reused), kept_positions, computed_positions])
    visible = key_positions[None, :] <= computed_positions[:, None]
    mask = torch.zeros(visible.shape, dtype=dtype)
    mask.masked_fill_(~visible, torch.finfo(dtype).min)
    ids = torch.tensor([[sequence[p] for p in computed_positions.tolist()]], device=device)
    out = model(
        input_ids=ids,
        position_ids=computed_positions[None].to(device),
        attention_mask=mask[None, None].to(device),
        use_cache=True,
        logits_to_keep=1,
        **{cache_arg: cache},
    )
    order = torch.argsort(key_positions).to(device)
    for cache_layer in layers:
        cache_layer.keys = cache_layer.keys.index_select(-2, order)
        cache_layer.values = cache_layer.values.index_select(-2, order)

    if dense_segments and anchors is not None:
        _record_anchors(anchors, sequence, segments, moved, dense_segments, layers)
    recomputed = int(len(reusable) - int(keep.sum()))
    return BlendResult(
        out.logits[0, -1].float(),
        computed=len(computed_positions),
        approximate=len(kept_positions),
        recomputed=recomputed,
        notes=notes,
    )


def _apply_anchors(
    anchors: AnchorPool,
    settings: SegmentReuse,
    sequence: Sequence[int],
    segments: Sequence[Segment],
    moved: list[tuple[list[torch.Tensor], list[torch.Tensor]]],
    dtype: torch.dtype,
) -> set[int]:
    """Add each segment's estimated offsets to its moved KV (in place in ``moved``); the
    indices of the segments with no confident estimate, to compute densely."""
    dense: set[int] = set()
    for i, (keys, values) in enumerate(moved):
        key = _anchor_key(sequence, segments, i)
        estimate = anchors.estimate(key, torch.stack(values)[:, 0], settings.anchor_threshold)
        if estimate is None:
            dense.add(i)
            continue
        key_offsets, value_offsets = estimate
        moved[i] = (
            [(k.float() + key_offsets[j][None]).to(dtype) for j, k in enumerate(keys)],
            [(v.float() + value_offsets[j][None]).to(dtype) for j, v in enumerate(values)],
        )
    return dense


def _record_anchors(
    anchors: AnchorPool,
    sequence: Sequence[int],
    segments: Sequence[Segment],
    moved: list[tuple[list[torch.Tensor], list[torch.Tensor]]],
    dense: set[int],
    layers: list[Any],
) -> None:
    """Record the densely computed segments as anchors: their moved values and the offsets
    of the computed KV (now in ``layers``, in position order) from the moved KV."""
    for i in sorted(dense):
        segment = segments[i]
        span = slice(segment.start, segment.end)
        real_keys = torch.stack([layer.keys[0, :, span] for layer in layers])
        real_values = torch.stack([layer.values[0, :, span] for layer in layers])
        base_keys = torch.stack(moved[i][0])[:, 0]
        base_values = torch.stack(moved[i][1])[:, 0]
        anchors.add(
            _anchor_key(sequence, segments, i),
            base_values,
            real_keys.float() - base_keys.float(),
            real_values.float() - base_values.float(),
        )


def _moved(
    segment: Segment, shifter: KeyShifter, device: Any, dtype: torch.dtype
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The segment's KV per layer, keys rotated to the new positions."""
    span = slice(segment.source_start, segment.source_start + segment.length)
    keys, values = [], []
    for k, v in segment.source.kv:
        k, v = k[:, :, span].to(device, dtype), v[:, :, span].to(device, dtype)
        keys.append(shifter.shift(k, segment.shift))
        values.append(v)
    return keys, values


def _gather(
    moved: list[tuple[list[torch.Tensor], list[torch.Tensor]]],
    segments: Sequence[Segment],
    dense: set[int],
    positions: torch.Tensor,
    part: int,
) -> list[torch.Tensor]:
    """Per layer, the moved K (``part`` 0) or V (1) at ``positions``, which reused segments
    cover."""
    if not moved:
        return []
    end = max(segment.end for segment in segments)
    per_layer = []
    for layer, sample in enumerate(moved[0][part]):
        whole = sample.new_zeros((*sample.shape[:2], end, sample.shape[-1]))
        for i, segment in enumerate(segments):
            if i not in dense:
                whole[:, :, segment.start : segment.end] = moved[i][part][layer]
        per_layer.append(whole[:, :, positions.to(whole.device)])
    return per_layer


def _probe(
    model: Any, cache: Any, sequence: Sequence[int], reused: int, cache_arg: str, device: Any
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Dense KV of the first layers (through :data:`PROBE_LAYER`) for positions from
    ``reused`` on, computed on a scratch cache."""
    from transformers import DynamicCache

    scratch = DynamicCache(config=model.config)
    scratch_layers: list[Any] = list(scratch.layers)
    for source, target in zip(cache.layers, scratch_layers):
        if source.keys is not None and source.keys.shape[-2]:
            target.lazy_initialization(source.keys, source.values)
            target.keys, target.values = source.keys, source.values
    decoder_layers = model.model.layers
    last = min(PROBE_LAYER, len(decoder_layers) - 1)
    handle = None
    if last + 1 < len(decoder_layers):

        def stop(*_: Any) -> None:
            raise _ProbeDone

        handle = decoder_layers[last + 1].register_forward_pre_hook(stop)
    ids = torch.tensor([list(sequence[reused:])], device=device)
    try:
        model(input_ids=ids, use_cache=True, logits_to_keep=1, **{cache_arg: scratch})
    except _ProbeDone:
        pass
    finally:
        if handle is not None:
            handle.remove()
    layers = scratch_layers[: last + 1]
    return (
        [layer.keys[:, :, reused:] for layer in layers],
        [layer.values[:, :, reused:] for layer in layers],
    )


def _deviation(
    approx_keys: list[torch.Tensor],
    approx_values: list[torch.Tensor],
    probe_keys: list[torch.Tensor],
    probe_values: list[torch.Tensor],
    offset: torch.Tensor,
) -> torch.Tensor:
    """Squared distance, per reused position, between the moved KV and the probe's at the
    probe layer."""
    layer = len(probe_keys) - 1
    dense_k = probe_keys[layer][0, :, offset].float()
    dense_v = probe_values[layer][0, :, offset].float()
    return (approx_keys[layer][0].float() - dense_k).pow(2).sum(dim=(0, 2)) + (
        approx_values[layer][0].float() - dense_v
    ).pow(2).sum(dim=(0, 2))


def _anchor_key(sequence: Sequence[int], segments: Sequence[Segment], i: int) -> tuple[int, ...]:
    """Where segment ``i`` goes and comes from: the new prompt's head (before the first
    segment), the segment's rank, and the head of the context it was computed in."""
    source = segments[i].source.sequence[: min(segments[i].source_start, _HEAD_TOKENS)]
    return (_digest(sequence[: segments[0].start]), i, _digest(source))


def _digest(tokens: Sequence[int]) -> int:
    data = ",".join(map(str, tokens)).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
