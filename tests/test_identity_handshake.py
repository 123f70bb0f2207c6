"""Model identity fingerprints and the handshake rules."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from avp_core import AVPError, Mode, ModelIdentity, extract_model_identity, models, resolve


def _identity(**changes):
    base = dict(
        model_type="qwen2",
        num_layers=2,
        hidden_size=64,
        num_kv_heads=2,
        head_dim=16,
        vocab_size=4096,
        weights_fingerprint="w",
        tokenizer_fingerprint="t",
        template_fingerprint="c",
        dtype="float32",
    )
    return ModelIdentity(**{**base, **changes})


@pytest.mark.parametrize(
    ("remote", "mode", "words"),
    [
        (_identity(), Mode.LATENT, "same weights"),
        (_identity(dtype="bfloat16"), Mode.LATENT, "KV cast bfloat16 -> float32"),
        (_identity(weights_fingerprint="w2"), Mode.HYBRID, "different weights"),
        (_identity(template_fingerprint="c2"), Mode.HYBRID, "chat templates"),
        (_identity(tokenizer_fingerprint="t2"), Mode.JSON, "tokenizers differ"),
        (_identity(model_type="llama"), Mode.HYBRID, "architectures differ"),
        (_identity(model_type="gpt_neox", tokenizer_fingerprint="t3"), Mode.JSON, "architectures"),
        (None, Mode.JSON, "unknown"),
    ],
)
def test_resolve_rules(remote, mode, words):
    handshake = resolve(_identity(), remote)
    assert handshake.mode is mode
    assert words in handshake.reason


def test_identity_round_trips_as_json_and_ignores_model_id():
    identity = _identity(model_id="a")
    assert ModelIdentity.from_json(identity.to_json()) == identity
    assert identity == _identity(model_id="b")  # the display name is not part of identity
    with pytest.raises(AVPError, match="missing"):
        ModelIdentity.from_dict({"model_type": "x"})


def test_same_weights_from_another_path_are_latent(qwen, tmp_path):
    path = models.build("tiny-qwen2", tmp_path / "copy")
    model = AutoModelForCausalLM.from_pretrained(path)
    identity = extract_model_identity(model, AutoTokenizer.from_pretrained(path))
    assert identity == qwen.identity
    assert resolve(qwen.identity, identity).mode is Mode.LATENT


def test_one_changed_weight_is_not_latent(qwen):
    model = copy.deepcopy(qwen.model)
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[3, 5] += 1e-3
    identity = extract_model_identity(model, qwen.tokenizer)
    assert identity.weights_fingerprint != qwen.identity.weights_fingerprint
    assert resolve(qwen.identity, identity).mode is Mode.HYBRID


def test_bf16_upcast_keeps_the_weights_fingerprint(qwen):
    bf16 = copy.deepcopy(qwen.model).to(torch.bfloat16)
    upcast = copy.deepcopy(bf16).to(torch.float32)
    a = extract_model_identity(bf16, qwen.tokenizer)
    b = extract_model_identity(upcast, qwen.tokenizer)
    assert a.weights_fingerprint == b.weights_fingerprint and a.dtype != b.dtype
    assert resolve(a, b).mode is Mode.LATENT


def test_tokenizer_and_architecture_separate_the_builtin_models(qwen, llama, other):
    assert resolve(qwen.identity, llama.identity).mode is Mode.HYBRID  # shared tokenizer
    assert resolve(qwen.identity, other.identity).mode is Mode.JSON
    assert resolve(other.identity, qwen.identity).mode is Mode.JSON


def test_large_tensors_are_sampled_not_hashed_whole():
    from avp_core.connectors import hf_identity as identity_module

    big = torch.nn.Linear(2048, 1024, bias=False)  # 2M elements > FULL_HASH_ELEMENTS
    before = identity_module.weights_fingerprint(big)
    with torch.no_grad():
        big.weight.mul_(1.01)  # a fine-tune changes (nearly) every value
    assert identity_module.weights_fingerprint(big) != before
