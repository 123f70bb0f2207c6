"""Segment reuse: the index, exact key re-rotation, anchors, and the connector's blended prefill."""

from __future__ import annotations

import pytest
import torch

from avp_core import AVPContext
from avp_core.context import LATENT
from avp_core.reuse import SegmentIndex, SegmentReuse, find_segments
from avp_core.reuse.anchors import AnchorPool
from avp_core.reuse.rope import KeyShifter
from avp_suite.bench.workload import make_document


def context(sequence: list[int]) -> AVPContext:
    return AVPContext(sequence=tuple(sequence), kv=(), identity=None)


def test_index_finds_runs_at_other_positions_and_forgets():
    source = context(list(range(100, 200)))
    index = SegmentIndex(chunk_tokens=8)
    index.add(source)
    prompt = [1, 2, 3, *range(130, 180), 4, 5]
    (segment,) = find_segments(prompt, [index], start=0, end=len(prompt) - 1, min_tokens=16)
    assert (segment.source_start, segment.start, segment.length) == (30, 3, 50)
    assert segment.shift == -27 and segment.source is source
    assert find_segments(prompt, [index], start=0, end=len(prompt), min_tokens=51) == []
    index.discard(source.context_id)
    assert len(index) == 0
    assert find_segments(prompt, [index], start=0, end=len(prompt), min_tokens=1) == []


def test_index_skips_latent_steps_and_respects_start_and_accept():
    source = context([*range(100, 132), LATENT, *range(133, 170)])
    index = SegmentIndex(chunk_tokens=8)
    index.add(source)
    prompt = list(range(100, 170))
    found = find_segments(prompt, [index], start=10, end=70, min_tokens=8)
    assert [(s.start, s.length) for s in found] == [(10, 22), (33, 37)]
    refused = find_segments(prompt, [index], start=0, end=70, min_tokens=8, accept=lambda c: False)
    assert refused == []


def test_key_shift_is_exact_at_the_first_layer(qwen):
    """Layer 0 keys come from position-free embeddings, so moving them must match exactly."""
    shifter, reason = KeyShifter.for_model(qwen.model)
    assert shifter is not None, reason
    ids = qwen.tokenizer("a shifted run of tokens, then some more", return_tensors="pt").input_ids
    keys = {}
    for offset in (0, 37):
        cache = qwen._new_cache()
        positions = torch.arange(ids.shape[1])[None] + offset
        with torch.inference_mode():
            qwen.model(
                input_ids=ids, position_ids=positions, use_cache=True, **{qwen._cache_arg: cache}
            )
        keys[offset] = cache.layers[0].keys
    assert torch.allclose(shifter.shift(keys[0], 37), keys[37], atol=1e-5)
    assert torch.allclose(shifter.shift(keys[37], -37), keys[0], atol=1e-5)
    assert not torch.allclose(keys[0], keys[37], atol=1e-3)


def test_unsupported_family_falls_back_to_dense_and_says_why(other):
    shifter, reason = KeyShifter.for_model(other.model)
    assert shifter is None and "not supported" in reason
    first = other.generate("Tell me about rivers and lakes. " * 8, max_new_tokens=4)
    prompt = [{"role": "user", "content": "Tell me about rivers and lakes. " * 8 + "More?"}]
    result = other.generate(prompt, max_new_tokens=4, segment_reuse=True, sources=[first.context])
    assert result.usage.approx_reused_tokens == 0
    assert any("not supported" in note for note in result.notes)
    assert result.text == other.generate(prompt, max_new_tokens=4).text


@pytest.fixture(scope="module")
def prompts(qwen):
    document, _ = make_document(qwen.tokenizer, 300)
    reader = [{"role": "system", "content": "You read."}, {"role": "user", "content": document}]
    analyst = [
        {"role": "system", "content": "You are an analyst with a different, longer prompt."},
        {"role": "user", "content": document},
        {"role": "user", "content": "What matters most?"},
    ]
    return reader, analyst


def test_recompute_one_equals_dense_prefill(qwen, prompts):
    reader, analyst = prompts
    source = qwen.generate(reader, max_new_tokens=8).context
    dense = qwen.generate(analyst, max_new_tokens=12, keep_logits=True)
    full = SegmentReuse(recompute=1.0, anchors=False)
    blended = qwen.generate(
        analyst, max_new_tokens=12, keep_logits=True, segment_reuse=full, sources=[source]
    )
    assert blended.token_ids == dense.token_ids
    assert torch.allclose(blended.first_logits, dense.first_logits, atol=1e-4)
    usage = blended.usage
    assert usage.approx_reused_tokens == 0 and usage.recomputed_tokens > 250
    assert blended.context.sequence == dense.context.sequence
    for (k1, v1), (k2, v2) in zip(blended.context.kv, dense.context.kv):
        assert torch.allclose(k1, k2, atol=1e-4) and torch.allclose(v1, v2, atol=1e-4)


def test_segment_reuse_counts_add_up_and_recompute_is_chosen(qwen, prompts):
    reader, analyst = prompts
    source = qwen.generate(reader, max_new_tokens=8).context
    for ratio in (0.0, 0.5):
        settings = SegmentReuse(recompute=ratio, anchors=False)
        usage = qwen.generate(
            analyst, max_new_tokens=4, segment_reuse=settings, sources=[source]
        ).usage
        assert usage.prompt_tokens == (
            usage.reused_tokens + usage.approx_reused_tokens + usage.prefilled_tokens
        )
        reusable = usage.approx_reused_tokens + usage.recomputed_tokens
        assert reusable > 250 and usage.recomputed_tokens == pytest.approx(ratio * reusable, abs=1)


def test_sources_from_another_model_are_never_mixed(qwen, llama, prompts):
    reader, analyst = prompts
    foreign = qwen.generate(reader, max_new_tokens=8).context
    result = llama.generate(analyst, max_new_tokens=6, segment_reuse=True, sources=[foreign])
    assert result.usage.approx_reused_tokens == 0 and result.usage.reused_tokens == 0
    assert any("not reused" in note for note in result.notes)
    assert result.text == llama.generate(analyst, max_new_tokens=6).text


def test_anchor_pool_reuses_a_confident_match_and_refuses_an_ambiguous_one():
    torch.manual_seed(0)
    pool = AnchorPool(max_per_key=3)
    base = [torch.randn(2, 1, 10, 4) for _ in range(3)]
    offsets = [torch.full((2, 1, 10, 4), float(i)) for i in range(3)]
    assert pool.estimate((1,), base[0], 0.3) is None  # an empty pool
    for b, o in zip(base, offsets):
        pool.add((1,), b, o, -o)
    keys, values = pool.estimate((1,), base[2][:, :, :6] + 0.01, 0.3)
    assert keys.shape == (2, 1, 6, 4)
    assert (keys > 1.2).all() and (keys < 2).all()  # weighted towards the close anchor's 2
    assert torch.allclose(values, -keys)
    middle = (base[0] + base[1]) / 2  # equally far from two anchors: ambiguous
    assert pool.estimate((1,), middle, 0.3) is None
    assert pool.estimate((2,), base[0], 0.3) is None  # another placement
    pool.add((1,), base[0], offsets[0], offsets[0])
    assert len(pool) == 3  # bounded per placement


def test_settings_are_validated():
    assert SegmentReuse.coerce(True) == SegmentReuse()
    assert SegmentReuse.coerce(None) is None and SegmentReuse.coerce(False) is None
    assert SegmentReuse(recompute=0.15).name == "segments-r0.15"
    assert SegmentReuse(anchors=True).name == "segments-r0.15+anchors"
    bad_settings = ({"recompute": -0.1}, {"min_tokens": 0}, {"anchor_threshold": 2})
    for bad in (*bad_settings, {"max_anchors": 1}):
        with pytest.raises(ValueError):
            SegmentReuse(**bad)


def test_store_keeps_its_segment_index_in_step(qwen):
    from avp_core import ContextStore

    contexts = [
        qwen.generate(f"Story {i}: " + "a river runs " * 20, max_new_tokens=2).context
        for i in range(3)
    ]
    store = ContextStore(max_bytes=2 * contexts[0].nbytes + 1)
    assert len(store.segment_index) == 0  # built now, so eviction below must update it
    for context in contexts:
        store.put(context)
    assert len(store) == 2 and len(store.segment_index) == 2  # the oldest left both
    store.put(contexts[2], key="again")  # one context under two keys: indexed once
    store.pop(contexts[2].context_id)
    assert len(store.segment_index) == 1
    store.clear()
    assert len(store.segment_index) == 0
    store.put(contexts[0])
    assert len(store.segment_index) == 1  # rebuilt from what the store holds
