"""HuggingFaceConnector: the latent path equals the text path, and falls back when it must."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from avp_core import (
    AVPContext,
    HuggingFaceConnector,
    IncompatibleContextError,
    InvalidRequestError,
    Mode,
    ModelNotFoundError,
)

TOKENS = 24
CHAT = [
    {"role": "system", "content": "You are a careful analyst of travel plans."},
    {
        "role": "user",
        "content": "Read the plan: take the early train, visit the museum, "
        "then cook dinner at the lake house. What could go wrong?",
    },
]


def follow_up(first_text: str) -> list[dict]:
    return [
        *CHAT,
        {"role": "assistant", "content": first_text},
        {"role": "user", "content": "List the three biggest risks."},
    ]


@pytest.fixture(params=["qwen", "llama", "smollm2"])
def connector(request) -> HuggingFaceConnector:
    return request.getfixturevalue(request.param)


def test_shared_layout_equals_text_path(connector):
    first = connector.generate(CHAT, max_new_tokens=TOKENS)
    messages = follow_up(first.text)
    text = connector.generate(messages, max_new_tokens=TOKENS, keep_logits=True)
    latent = connector.generate(
        messages, max_new_tokens=TOKENS, context=first.context, keep_logits=True
    )
    assert first.first_logits is None  # only when asked for
    assert latent.handshake.mode is Mode.LATENT
    assert latent.token_ids == text.token_ids and latent.text == text.text
    assert torch.allclose(latent.first_logits, text.first_logits, atol=1e-4, rtol=0)
    assert text.usage.reused_tokens == 0
    assert latent.usage.reused_tokens > len(first.context.sequence) // 2
    assert latent.usage.prefilled_tokens + latent.usage.reused_tokens == text.usage.prompt_tokens


def test_same_prompt_with_full_context_still_prefills_one_token(qwen):
    first = qwen.generate(CHAT, max_new_tokens=4)
    again = qwen.generate(CHAT, max_new_tokens=4, context=first.context)
    assert again.token_ids == first.token_ids
    assert again.usage.prefilled_tokens == 1


def test_context_reuse_is_repeatable_and_forks_do_not_interfere(qwen):
    first = qwen.generate(CHAT, max_new_tokens=TOKENS)
    before = [t.clone() for pair in first.context.kv for t in pair]
    branch_a = follow_up(first.text)
    branch_b = [*follow_up(first.text)[:-1], {"role": "user", "content": "Suggest a backup plan."}]
    a1 = qwen.generate(branch_a, max_new_tokens=TOKENS, context=first.context)
    b1 = qwen.generate(branch_b, max_new_tokens=TOKENS, context=first.context)
    a2 = qwen.generate(branch_a, max_new_tokens=TOKENS, context=first.context)
    b2 = qwen.generate(branch_b, max_new_tokens=TOKENS, context=first.context)
    assert a1.token_ids == a2.token_ids and b1.token_ids == b2.token_ids
    assert a1.token_ids != b1.token_ids
    after = [t for pair in first.context.kv for t in pair]
    assert all(torch.equal(x, y) for x, y in zip(before, after))  # the context is untouched
    # handoff forks from one context as well
    h1 = qwen.generate("Critique it.", context=first.context, layout="handoff", max_new_tokens=8)
    h2 = qwen.generate("Critique it.", context=first.context, layout="handoff", max_new_tokens=8)
    assert h1.token_ids == h2.token_ids


def test_context_through_bytes_behaves_identically(qwen):
    first = qwen.generate(CHAT, max_new_tokens=TOKENS)
    restored = AVPContext.from_bytes(first.context.to_bytes(compression=3))
    assert restored.sequence == first.context.sequence
    assert restored.identity == first.context.identity and restored.text == first.text
    assert restored.context_id == first.context.context_id
    messages = follow_up(first.text)
    direct = qwen.generate(messages, max_new_tokens=TOKENS, context=first.context)
    via_bytes = qwen.generate(messages, max_new_tokens=TOKENS, context=restored)
    assert direct.token_ids == via_bytes.token_ids
    assert direct.usage.reused_tokens == via_bytes.usage.reused_tokens > 0
    handoff = qwen.generate("Go on.", context=restored, layout="handoff", max_new_tokens=6)
    assert handoff.usage.reused_tokens == restored.seq_len


def test_handoff_reuses_the_whole_context_and_closes_the_turn(qwen):
    first = qwen.generate(CHAT, max_new_tokens=TOKENS)
    second = qwen.generate(
        [{"role": "system", "content": "You are a critic."}],
        context=first.context,
        layout="handoff",
        max_new_tokens=TOKENS,
    )
    assert second.usage.reused_tokens == first.context.seq_len
    assert second.context.sequence[: first.context.seq_len] == first.context.sequence
    bridge = qwen.tokenizer.decode(
        second.context.sequence[first.context.seq_len : second.usage.prompt_tokens]
    )
    assert (
        bridge
        == "<|im_end|>\n<|im_start|>system\nYou are a critic.<|im_end|>\n<|im_start|>assistant\n"
    )


def test_other_model_never_reuses_and_falls_back_to_text(qwen, other):
    first = qwen.generate(CHAT, max_new_tokens=TOKENS)
    messages = follow_up(first.text)
    text = other.generate(messages, max_new_tokens=TOKENS)
    fallback = other.generate(messages, max_new_tokens=TOKENS, context=first.context)
    assert fallback.usage.reused_tokens == 0
    assert fallback.handshake.mode is Mode.JSON and "differ" in fallback.handshake.reason
    assert fallback.token_ids == text.token_ids
    handoff = other.generate("Critique.", context=first.context, layout="handoff", max_new_tokens=4)
    assert handoff.usage.reused_tokens == 0  # the context's text arrives as an assistant turn
    qwen_given_other_context = qwen.generate(
        messages, max_new_tokens=4, context=other.generate(CHAT, max_new_tokens=4).context
    )
    assert qwen_given_other_context.usage.reused_tokens == 0


def test_incompatible_context_without_text_raises(qwen, other):
    thought = qwen.think(CHAT, steps=2)
    assert thought.text is None
    with pytest.raises(IncompatibleContextError, match="no text to fall back on"):
        other.generate("Go on.", context=thought, layout="handoff", max_new_tokens=4)


def test_hybrid_same_tokenizer_other_weights_uses_text(qwen, llama):
    first = qwen.generate(CHAT, max_new_tokens=8)
    result = llama.generate(follow_up(first.text), context=first.context, max_new_tokens=4)
    assert result.handshake.mode is Mode.HYBRID and result.usage.reused_tokens == 0


def test_think_grows_kv_by_steps_and_is_deterministic(qwen):
    a = qwen.think(CHAT, steps=5)
    b = qwen.think(CHAT, steps=5)
    prompt = qwen.count_tokens(CHAT)
    assert a.seq_len == prompt + 5 and a.latent_steps == 5 and len(a.token_ids) == prompt
    assert all(k.shape[2] == a.seq_len for k, _ in a.kv)
    assert all(torch.equal(x, y) for p, q in zip(a.kv, b.kv) for x, y in zip(p, q))
    more = qwen.think("Keep thinking.", steps=3, context=a, layout="handoff")
    assert more.latent_steps == 8
    answer = qwen.generate("Answer now.", context=more, layout="handoff", max_new_tokens=6)
    assert answer.usage.reused_tokens == more.seq_len
    restored = AVPContext.from_bytes(more.to_bytes())
    assert restored.latent_steps == 8 and torch.equal(restored.last_hidden, more.last_hidden)
    again = qwen.generate("Answer now.", context=restored, layout="handoff", max_new_tokens=6)
    assert again.token_ids == answer.token_ids


def test_threads_give_the_same_answers_as_serial(qwen):
    prompts = [
        [*CHAT[:1], {"role": "user", "content": f"Question {i}: plan day {i}."}] for i in range(8)
    ]
    first = qwen.generate(CHAT, max_new_tokens=8)
    serial = [qwen.generate(p, max_new_tokens=12).token_ids for p in prompts]
    serial_handoff = qwen.generate(
        "Next.", context=first.context, layout="handoff", max_new_tokens=12
    ).token_ids
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda p: qwen.generate(p, max_new_tokens=12).token_ids, prompts))
        handoffs = list(
            pool.map(
                lambda _: (
                    qwen.generate(
                        "Next.", context=first.context, layout="handoff", max_new_tokens=12
                    ).token_ids
                ),
                range(8),
            )
        )
    assert parallel == serial
    assert handoffs == [serial_handoff] * 8


def test_stream_yields_chunks_that_make_the_text(qwen):
    items = list(qwen.generate_stream(CHAT, max_new_tokens=TOKENS))
    chunks, result = items[:-1], items[-1]
    assert len(chunks) > 1 and "".join(chunks) == result.text
    assert result.text == qwen.generate(CHAT, max_new_tokens=TOKENS).text


def test_stop_strings_cut_the_text(qwen):
    full = qwen.generate(CHAT, max_new_tokens=TOKENS).text
    word = full.split()[3]
    stopped = qwen.generate(CHAT, max_new_tokens=TOKENS, stop=[word])
    assert stopped.finish_reason == "stop" and word not in stopped.text
    assert full.startswith(stopped.text)
    streamed = "".join(
        x
        for x in qwen.generate_stream(CHAT, max_new_tokens=TOKENS, stop=[word])
        if isinstance(x, str)
    )
    assert streamed == stopped.text
    # the context ends before the tokens that spell the stop string
    covered = stopped.context.sequence[qwen.count_tokens(CHAT) :]
    assert word not in qwen.tokenizer.decode(covered)
    assert stopped.context.seq_len == stopped.context.kv[0][0].shape[2]


def test_sampling_is_seeded(qwen):
    a = qwen.generate(CHAT, max_new_tokens=12, temperature=0.8, top_p=0.9, seed=7)
    b = qwen.generate(CHAT, max_new_tokens=12, temperature=0.8, top_p=0.9, seed=7)
    assert a.token_ids == b.token_ids


def test_stats_count_calls(qwen):
    fresh = HuggingFaceConnector(qwen.model, qwen.tokenizer)
    first = fresh.generate(CHAT, max_new_tokens=4)
    fresh.generate(follow_up(first.text), max_new_tokens=4, context=first.context)
    stats = fresh.stats
    assert stats.calls == 2 and stats.completion_tokens == 8 and stats.reused_tokens > 0
    assert stats.prompt_tokens == stats.reused_tokens + stats.prefilled_tokens
    fresh.reset_stats()
    assert fresh.stats.calls == 0
    with fresh.record() as calls:
        fresh.generate(CHAT, max_new_tokens=2)
        fresh.think(CHAT, steps=1)
    fresh.generate(CHAT, max_new_tokens=2)
    assert len(calls) == 2 and calls[0].completion_tokens == 2


def test_bad_requests_raise_clear_errors(qwen):
    with pytest.raises(InvalidRequestError, match="layout"):
        qwen.generate(CHAT, layout="sideways")
    with pytest.raises(InvalidRequestError, match="max_new_tokens"):
        qwen.generate(CHAT, max_new_tokens=0)
    with pytest.raises(InvalidRequestError, match="empty"):
        qwen.generate([])
    with pytest.raises(ModelNotFoundError, match="built-in name"):
        HuggingFaceConnector.from_pretrained("/no/such/model/dir")


def test_connector_does_not_mutate_the_callers_model(qwen):
    state = {k: v.clone() for k, v in qwen.model.state_dict().items()}
    template = qwen.tokenizer.chat_template
    qwen.generate(CHAT, max_new_tokens=4)
    qwen.think(CHAT, steps=2)
    assert all(torch.equal(state[k], v) for k, v in qwen.model.state_dict().items())
    assert qwen.tokenizer.chat_template == template


def test_reported_prefill_is_what_the_model_actually_receives(qwen):
    received: list[int] = []

    def count(module, args, kwargs):
        tensor = kwargs.get("input_ids")
        tensor = tensor if tensor is not None else kwargs["inputs_embeds"]
        received.append(tensor.shape[1])

    handle = qwen.model.register_forward_pre_hook(count, with_kwargs=True)
    try:
        first = qwen.generate(CHAT, max_new_tokens=TOKENS)
        first_received, received[:] = list(received), []
        latent = qwen.generate(follow_up(first.text), max_new_tokens=TOKENS, context=first.context)
    finally:
        handle.remove()
    for usage, seen in ((first.usage, first_received), (latent.usage, received)):
        assert seen[0] == usage.prefilled_tokens  # one forward over the new prompt positions
        assert seen[1:] == [1] * usage.completion_tokens  # then one position per token
    assert latent.usage.prefilled_tokens < latent.usage.prompt_tokens // 2


class _Delegating:
    """Another connector, built by composition: every member comes from a real one."""

    def __init__(self, inner: HuggingFaceConnector) -> None:
        self._inner = inner
        self.identity = inner.identity

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def test_the_hf_connector_implements_the_interface_and_so_may_others(qwen):
    from avp_core import Connector

    assert isinstance(qwen, Connector)
    assert isinstance(_Delegating(qwen), Connector)
    assert not isinstance(object(), Connector)


def test_a_prompt_past_the_context_window_is_a_clear_error_and_generation_stops_at_it():
    from avp_core import ContextWindowError, HuggingFaceConnector

    small = HuggingFaceConnector.from_pretrained("tiny-qwen2")
    small.model.config.max_position_embeddings = 48
    assert small.context_window == 48
    long = [{"role": "user", "content": "word " * 60}]
    with pytest.raises(ContextWindowError, match="attends to 48"):
        small.generate(long, max_new_tokens=4)
    short = [{"role": "user", "content": "Hi."}]
    prompt = small.count_tokens(short)
    result = small.generate(short, max_new_tokens=100, ignore_eos=True)
    assert result.finish_reason == "length"
    assert len(result.token_ids) == 48 - prompt and result.context.seq_len == 48
    with pytest.raises(ContextWindowError):
        small.generate(
            [{"role": "user", "content": "More."}],
            context=result.context,
            layout="handoff",
            max_new_tokens=4,
        )
    with pytest.raises(ContextWindowError, match="to think"):
        small.think(short, steps=48)


def test_generation_options_are_checked_once_for_every_adapter():
    from avp_core import GenerationOptions, InvalidRequestError

    options = GenerationOptions(max_new_tokens=8, stop="END")
    assert options.stop == ("END",) and options.to_kwargs()["stop"] == ["END"]
    assert options.updated(temperature=0.5).temperature == 0.5 and options.temperature == 0
    for bad in (
        {"max_new_tokens": 0},
        {"max_new_tokens": True},
        {"temperature": -1},
        {"temperature": float("nan")},
        {"top_p": 0},
        {"stop": [1]},
    ):
        with pytest.raises(InvalidRequestError):
            GenerationOptions(**bad)
    with pytest.raises(InvalidRequestError, match="unknown generation options"):
        options.updated(logprobs=True)
