"""Built-in offline models: load like real checkpoints, deterministic, cached atomically."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from avp_core import models
from avp_core.errors import ModelNotFoundError

TINY = ("tiny-qwen2", "tiny-llama", "tiny-other")
REPO = Path(__file__).resolve().parents[1]
CHAT: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a careful planner."},
    {"role": "user", "content": "Plan a day trip to the lake."},
    {"role": "assistant", "content": "Take the early train."},
    {"role": "user", "content": "And lunch?"},
]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: models.build(name, root / name) for name in TINY}


def load_model(path: Path, **kwargs: Any) -> Any:
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def load_tok(path: Path) -> Any:
    return AutoTokenizer.from_pretrained(path)


def files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def greedy(path: Path, n: int = 30, **load: Any) -> tuple[list[int], Any]:
    model = load_model(path, **load)
    tok = load_tok(path)
    enc = tok.apply_chat_template(
        CHAT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True)
    return out[0, enc["input_ids"].shape[1] :].tolist(), tok


def test_names() -> None:
    assert set(models.NAMES) == {
        "tiny-qwen2",
        "tiny-llama",
        "tiny-other",
        "bench-qwen2",
        "bench-qwen2-500m",
        "smollm2-135m",
    }
    assert set(models.RANDOM_NAMES) == set(models.NAMES) - {"smollm2-135m"}


@pytest.mark.parametrize("name", TINY)
def test_tiny_loads_and_generates_varied_tokens(tiny_dirs: dict[str, Path], name: str) -> None:
    path = tiny_dirs[name]
    model = load_model(path)
    assert model.config.model_type == models.describe(name)["architecture"]
    assert model.dtype == torch.float32
    assert model.config._attn_implementation in ("sdpa", "eager")
    assert model.config.tie_word_embeddings is False
    out_w = model.get_output_embeddings().weight
    assert out_w.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    assert model.num_parameters() == models.describe(name)["params"]
    assert 300_000 < model.num_parameters() < 1_000_000

    new, tok = greedy(path)
    assert len(new) == 30
    assert len(set(new)) > 10, new
    assert tok.eos_token_id not in new[:5]
    assert model.config.vocab_size == len(tok)


@pytest.mark.parametrize("name", TINY)
def test_eager_attention_matches_sdpa(tiny_dirs: dict[str, Path], name: str) -> None:
    sdpa, _ = greedy(tiny_dirs[name], n=12, attn_implementation="sdpa")
    eager, _ = greedy(tiny_dirs[name], n=12, attn_implementation="eager")
    assert sdpa == eager


@pytest.mark.parametrize("name", TINY)
def test_build_is_byte_identical(tmp_path: Path, tiny_dirs: dict[str, Path], name: str) -> None:
    models._trained_tokenizer.cache_clear()  # retrain: training must be deterministic too
    again = models.build(name, tmp_path / "again")
    assert files(again) == files(tiny_dirs[name])
    assert "chat_template.jinja" in files(again)
    assert "model.safetensors" in files(again)


def test_llama_shares_tokenizer_with_qwen2(tiny_dirs: dict[str, Path]) -> None:
    qwen, llama = files(tiny_dirs["tiny-qwen2"]), files(tiny_dirs["tiny-llama"])
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert qwen[name] == llama[name]
    assert qwen["model.safetensors"] != llama["model.safetensors"]


def test_other_tokenizer_differs(tiny_dirs: dict[str, Path]) -> None:
    qwen = load_tok(tiny_dirs["tiny-qwen2"])
    other = load_tok(tiny_dirs["tiny-other"])
    assert len(qwen) == 4096 and len(other) == 3000
    assert qwen.get_vocab() != other.get_vocab()
    assert qwen.chat_template != other.chat_template
    assert "<|im_start|>" in qwen.get_vocab() and "<|im_start|>" not in other.get_vocab()
    assert (other.bos_token, other.eos_token) == ("<s>", "</s>")
    text = "The agents share their notes before the meeting."
    assert qwen(text).input_ids != other(text).input_ids
    assert qwen.decode(qwen(text).input_ids) == text == other.decode(other(text).input_ids)


def test_chatml_template(tiny_dirs: dict[str, Path]) -> None:
    tok = load_tok(tiny_dirs["tiny-qwen2"])
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a careful planner.<|im_end|>\n"
        "<|im_start|>user\nPlan a day trip to the lake.<|im_end|>\n"
        "<|im_start|>assistant\nTake the early train.<|im_end|>\n"
        "<|im_start|>user\nAnd lunch?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    closed = tok.apply_chat_template(CHAT[:3], tokenize=False)
    assert closed.endswith("<|im_start|>assistant\nTake the early train.<|im_end|>\n")
    ids = tok.apply_chat_template(CHAT, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 5
    tool = [
        {"role": "tool", "content": "12 C"},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
    ]
    assert tok.apply_chat_template(tool, tokenize=False) == (
        "<|im_start|>tool\n12 C<|im_end|>\n<|im_start|>user\nThanks<|im_end|>\n"
    )


def test_other_template(tiny_dirs: dict[str, Path]) -> None:
    tok = load_tok(tiny_dirs["tiny-other"])
    text = tok.apply_chat_template(CHAT[:3], tokenize=False, add_generation_prompt=True)
    assert text == (
        "<s>### System:\nYou are a careful planner.\n\n"
        "### User:\nPlan a day trip to the lake.\n\n"
        "### Assistant:\nTake the early train.</s>\n\n"
        "### Assistant:\n"
    )
    ids = tok.apply_chat_template(CHAT[:2], add_generation_prompt=True, return_dict=True)
    assert ids["input_ids"][0] == tok.bos_token_id
    assert ids["input_ids"].count(tok.bos_token_id) == 1


def test_unknown_name() -> None:
    with pytest.raises(ModelNotFoundError, match="tiny-qwen2") as info:
        models.build("gpt-17")
    assert isinstance(info.value, ValueError)
    assert all(name in str(info.value) for name in models.NAMES)
    with pytest.raises(ModelNotFoundError):
        models.describe("gpt-17")


def test_cache_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVP_SUITE_CACHE", str(tmp_path / "cache"))
    first = models.build("tiny-qwen2")
    assert first.parent == tmp_path / "cache" / "tiny-qwen2"
    assert load_tok(first).eos_token == "<|im_end|>"

    def no_rebuild(*args: object) -> None:
        raise AssertionError("rebuilt a cached model")

    monkeypatch.setattr(models, "_write", no_rebuild)
    assert models.build("tiny-qwen2") == first
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temp dirs left


def test_cache_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AVP_SUITE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert models.cache_dir() == tmp_path / "avp-suite" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert models.cache_dir() == Path.home() / ".cache" / "avp-suite" / "models"


def test_path_overwrites_existing_dir(tmp_path: Path, tiny_dirs: dict[str, Path]) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")
    assert models.build("tiny-qwen2", target) == target
    assert files(target) == files(tiny_dirs["tiny-qwen2"])
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_builder_that_loses_the_race_keeps_the_winners_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVP_SUITE_CACHE", str(tmp_path))
    real_write, calls = models._write, []

    def write_while_another_finishes(spec: Any, out: Path) -> None:
        calls.append(out)
        if len(calls) == 1:  # another builder completes while this one is still writing
            winner.append(models.build("tiny-qwen2"))
        real_write(spec, out)

    winner: list[Path] = []
    monkeypatch.setattr(models, "_write", write_while_another_finishes)
    path = models.build("tiny-qwen2")
    assert len(calls) == 2 and path == winner[0]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # loser's temp dir removed
    assert load_model(path).config.model_type == "qwen2"


def test_concurrent_builders_share_one_complete_dir(tmp_path: Path) -> None:
    env = {**os.environ, "AVP_SUITE_CACHE": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    code = "from avp_core import models; print(models.build('tiny-qwen2'))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert [p.returncode for p in procs] == [0, 0]
    assert len(outs) == 1
    path = Path(outs.pop())
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert files(path) == files(models.build("tiny-qwen2", tmp_path / "direct"))


@pytest.mark.slow
def test_bench_qwen2(tmp_path: Path) -> None:
    info = models.describe("bench-qwen2")
    assert 25_000_000 <= info["params"] <= 60_000_000
    path = models.build("bench-qwen2", tmp_path / "a")
    model = load_model(path)
    cfg = model.config
    assert model.num_parameters() == info["params"]
    assert cfg.model_type == "qwen2" and cfg.hidden_size >= 512 and cfg.num_hidden_layers >= 8
    assert cfg.num_key_value_heads < cfg.num_attention_heads
    assert cfg.max_position_embeddings >= 8192 and cfg.tie_word_embeddings is False
    assert cfg.vocab_size == len(load_tok(path))
    new, _ = greedy(path, n=20)
    assert len(set(new)) > 8
    assert files(models.build("bench-qwen2", tmp_path / "b")) == files(path)
