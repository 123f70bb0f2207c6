"""Built-in offline models: real architectures, deterministic random weights, trained BPE.

No weights can be downloaded here, so tests and benchmarks use checkpoints built locally:
a Hugging Face model (Qwen2, Llama, GPT-NeoX) with seeded random weights and a byte-level BPE
tokenizer trained on the embedded corpus (:mod:`avp_core._corpus`), written with
``save_pretrained`` so ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained`` load them
exactly like a downloaded checkpoint. Timing does not depend on weight values, so a random
model of realistic shape gives honest speed figures.

>>> path = build("tiny-qwen2")  # doctest: +SKIP
>>> AutoModelForCausalLM.from_pretrained(path)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from avp_core import real_models
from avp_core._corpus import corpus
from avp_core.errors import ModelNotFoundError
from avp_core.real_models import REAL_MODELS

#: Bump when anything that changes the written files changes (weights, tokenizer, templates).
RECIPE_VERSION = 2

CHATML_TEMPLATE = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- elif content is iterable -%}"
    "{%- for part in content -%}{%- if part is string -%}{{ part }}"
    "{%- elif part.type == 'text' -%}{{ part.text }}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    "{%- if tools -%}"
    "{{ '<|im_start|>system\n' }}"
    "{%- if messages and messages[0].role == 'system' -%}{{ text(messages[0].content) + '\n\n' }}"
    "{%- endif -%}"
    "{{ '# Tools\n' }}{%- for tool in tools -%}{{ '\n' + tool | tojson }}{%- endfor -%}"
    "{{ '<|im_end|>\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if not (tools and loop.first and message.role == 'system') -%}"
    "{{ '<|im_start|>' + message.role }}"
    "{%- if message.content or not message.tool_calls -%}"
    "{{ '\n' + text(message.content) }}"
    "{%- endif -%}"
    "{%- for call in message.tool_calls or [] -%}"
    "{%- set fn = call.function if call.function is defined else call -%}"
    '{{ \'\n<tool_call>\n{"name": "\' + fn.name + \'", "arguments": \' }}'
    "{{- (fn.arguments if fn.arguments is string else fn.arguments | tojson) + '}\n</tool_call>' }}"
    "{%- endfor -%}"
    "{{ '<|im_end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

INST_TEMPLATE = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- elif content is iterable -%}"
    "{%- for part in content -%}{%- if part is string -%}{{ part }}"
    "{%- elif part.type == 'text' -%}{{ part.text }}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{{ '### ' + message.role | capitalize + ':\n' + text(message.content) }}"
    "{%- if message.role == 'assistant' -%}{{ eos_token }}{%- endif -%}"
    "{{ '\n\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '### Assistant:\n' }}{%- endif -%}"
)

# Qwen2's pre-tokenizer regex: AutoTokenizer rebuilds a qwen2 checkpoint's pipeline with
# Qwen2Tokenizer, so the trained tokenizer uses exactly that pipeline (load == build).
_QWEN_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


@dataclass(frozen=True)
class _TokenizerSpec:
    vocab_size: int
    specials: tuple[str, ...]
    roles: dict[str, str | None]  # bos/eos/pad/unk token strings
    template: str
    qwen_pipeline: bool  # Qwen2 regex + NFC (else GPT-2 byte-level regex)


_TOKENIZERS: dict[str, _TokenizerSpec] = {
    "chatml": _TokenizerSpec(
        4096,
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        {"bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>", "unk": None},
        CHATML_TEMPLATE,
        True,
    ),
    "inst": _TokenizerSpec(
        3000,
        ("<unk>", "<s>", "</s>", "<pad>"),
        {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"},
        INST_TEMPLATE,
        False,
    ),
}


@dataclass(frozen=True)
class _ModelSpec:
    model_type: str
    tokenizer: str
    seed: int
    purpose: str
    config: dict[str, Any] = field(default_factory=dict)


_QWEN_TINY = {
    "hidden_size": 64,
    "intermediate_size": 176,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
}

_SPECS: dict[str, _ModelSpec] = {
    "tiny-qwen2": _ModelSpec(
        "qwen2",
        "chatml",
        1001,
        "unit tests: Qwen2, grouped-query attention, untied embeddings, ChatML",
        {**_QWEN_TINY, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}},
    ),
    "tiny-llama": _ModelSpec(
        "llama",
        "chatml",
        1002,
        "unit tests: Llama, same tokenizer as tiny-qwen2 (HYBRID handshake)",
        {**_QWEN_TINY, "rope_parameters": {"rope_type": "default", "rope_theta": 5e5}},
    ),
    "tiny-other": _ModelSpec(
        "gpt_neox",
        "inst",
        1003,
        "fallback tests: GPT-NeoX with another tokenizer and template (JSON handshake)",
        {
            "hidden_size": 64,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 2048,
        },
    ),
    "bench-qwen2": _ModelSpec(
        "qwen2",
        "chatml",
        1004,
        "benchmarks: realistic Qwen2 shape (~38M params, 12 layers, GQA 8/2, 8K positions)",
        {
            "hidden_size": 512,
            "intermediate_size": 1408,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "max_position_embeddings": 8192,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6},
        },
    ),
    "bench-qwen2-500m": _ModelSpec(
        "qwen2",
        "chatml",
        1005,
        "benchmarks: the body of Qwen2.5-0.5B (24 layers, hidden 896, GQA 14/2; ~360M params "
        "with this vocabulary), where the linear layers outweigh attention as in real models",
        {
            "hidden_size": 896,
            "intermediate_size": 4864,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "max_position_embeddings": 8192,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6},
        },
    ),
}

RANDOM_NAMES: tuple[str, ...] = tuple(_SPECS)
NAMES: tuple[str, ...] = (*_SPECS, *REAL_MODELS)
"""Every built-in name: the random-weight models, then the real trained ones."""


def _spec(name: str) -> _ModelSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise _unknown(name) from None


def _unknown(name: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"unknown built-in model {name!r}; valid names: {', '.join(NAMES)}")


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise _unknown(name)


@cache
def _trained_tokenizer(kind: str) -> Any:
    """Train (once per process) the byte-level BPE ``tokenizers.Tokenizer`` of ``kind``."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    spec = _TOKENIZERS[kind]
    tok = Tokenizer(BPE(continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    if spec.qwen_pipeline:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_QWEN_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=spec.vocab_size,
        min_frequency=1,
        special_tokens=list(spec.specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus().splitlines(keepends=True), trainer=trainer)
    return tok


def _hf_tokenizer(kind: str) -> Any:
    """The transformers tokenizer object for ``kind`` (chat template and special tokens set)."""
    spec = _TOKENIZERS[kind]
    tok = _trained_tokenizer(kind)
    roles = {f"{k}_token": v for k, v in spec.roles.items()}
    named = set(spec.roles.values())
    extra = [s for s in spec.specials if s not in named]
    common: dict[str, Any] = {"chat_template": spec.template, "extra_special_tokens": extra}
    common.update(roles)
    if spec.qwen_pipeline:
        from transformers import Qwen2Tokenizer

        state = json.loads(tok.to_str())["model"]
        merges: Any = [tuple(m.split(" ") if isinstance(m, str) else m) for m in state["merges"]]
        return Qwen2Tokenizer(vocab=state["vocab"], merges=merges, model_max_length=32768, **common)
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=2048, **common)


def _init_weights(model: Any, seed: int, special_ids: list[int]) -> None:
    """Seeded init: N(0, 1/fan_in) matrices, N(0, 1) input embeddings, unit norms, zero biases.

    Larger than the usual 0.02 so random models give varied greedy tokens. Output rows are
    scaled (logit std ~4) so the top-2 gap dwarfs float noise and greedy tokens are stable;
    the rows of special tokens are zero, so greedy decoding never picks EOS.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    output = model.get_output_embeddings().weight
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.dim() == 1:
                param.fill_(1.0 if name.endswith("weight") and "norm" in name else 0.0)
                continue
            std = 1.0 / math.sqrt(param.shape[1])
            if param is model.get_input_embeddings().weight:
                std = 1.0
            elif param is output:
                std *= 4.0
            param.copy_(torch.randn(param.shape, generator=gen) * std)
        output[special_ids] = 0.0


def _config(spec: _ModelSpec, ids: dict[str, int]) -> Any:
    """The transformers config of ``spec`` (float32, untied, special token ids from ``ids``)."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.for_model(
        spec.model_type,
        vocab_size=_TOKENIZERS[spec.tokenizer].vocab_size,
        tie_word_embeddings=False,
        bos_token_id=ids.get("bos"),
        eos_token_id=ids.get("eos"),
        pad_token_id=ids.get("pad"),
        **spec.config,
    )
    config.dtype = torch.float32
    return config


def _write(spec: _ModelSpec, out: Path) -> None:
    """Write model + tokenizer files of ``spec`` into the existing directory ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    tokenizer = _hf_tokenizer(spec.tokenizer)
    if len(tokenizer) != _TOKENIZERS[spec.tokenizer].vocab_size:
        raise RuntimeError(f"tokenizer {spec.tokenizer!r} trained to {len(tokenizer)} tokens")
    roles = _TOKENIZERS[spec.tokenizer].roles
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in roles.items() if v}
    config = _config(spec, ids)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model = model.to_empty(device="cpu")
    special = sorted(tokenizer.convert_tokens_to_ids(list(_TOKENIZERS[spec.tokenizer].specials)))
    _init_weights(model, spec.seed, special)
    model.generation_config = GenerationConfig(
        bos_token_id=ids.get("bos"),
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        do_sample=False,
    )
    with quiet_progress():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Silence transformers' progress bars (shard writing, weight loading) for a block."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _tag(name: str) -> str:
    """Version tag of a recipe: changes whenever the recipe, spec or corpus changes (for a
    real model: whenever its GGUF file or the converter changes)."""
    if name in REAL_MODELS:
        return real_models.tag(name)
    spec = _spec(name)
    blob = json.dumps(
        [RECIPE_VERSION, repr(spec), repr(_TOKENIZERS[spec.tokenizer]), corpus()], sort_keys=True
    )
    return f"r{RECIPE_VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def cache_dir() -> Path:
    """Cache root: ``$AVP_SUITE_CACHE``, else ``$XDG_CACHE_HOME/avp-suite/models``."""
    if os.environ.get("AVP_SUITE_CACHE"):
        return Path(os.environ["AVP_SUITE_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "avp-suite" / "models"


def build(name: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Directory of built-in model ``name``, loadable with ``from_pretrained``.

    Without ``path`` the model is built once into :func:`cache_dir` (``<cache>/<name>/<tag>``)
    and reused; with ``path`` it is (re)written there. Writes are atomic: files are built in
    a temporary sibling directory that is renamed into place, so concurrent builders never
    see a half-written directory. Unknown names raise :class:`ModelNotFoundError`, and so
    does a real model whose wheel is not installed (the message says how to install it).
    """
    _check_name(name)
    dest = Path(path) if path is not None else cache_dir() / name / _tag(name)
    if path is None and (dest / "config.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        if name in REAL_MODELS:
            real_models.write(name, tmp)
        else:
            _write(_spec(name), tmp)
        tmp.chmod(0o755)
        if path is None and (dest / "config.json").is_file():
            return dest  # another builder finished first: keep its copy
        if dest.is_dir() and any(dest.iterdir()):
            for item in tmp.iterdir():
                os.replace(item, dest / item.name)
        else:
            try:
                os.rename(tmp, dest)
            except OSError:
                if not (dest / "config.json").is_file():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def check_name_or_path(name: str) -> None:
    """Refuse at once, with no network and no model loaded, what cannot name a model: not a
    built-in name, not an existing directory and not shaped like a Hub id (``owner/name``).
    A real built-in whose wheel is missing says how to install it."""
    import re

    if name in REAL_MODELS:
        real_models.gguf_path(name)
    if name in NAMES or Path(name).expanduser().is_dir():
        return
    hub_like = re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not name.startswith((".", "/"))
    if hub_like and not Path(name).exists():
        return
    where = "no such directory" if ("/" in name or name.startswith((".", "~"))) else "unknown name"
    raise ModelNotFoundError(
        f"cannot load model {name!r}: {where}. Pass a built-in name ({', '.join(NAMES)}), "
        "a checkpoint directory, or a Hub id (owner/name)"
    )


def describe(name: str) -> dict[str, Any]:
    """Architecture, exact parameter count and purpose of built-in model ``name`` (no build)."""
    if name in REAL_MODELS:
        real = REAL_MODELS[name]
        return {"name": name, **real.facts, "purpose": real.purpose}
    import torch
    from transformers import AutoModelForCausalLM

    spec = _spec(name)
    config = _config(spec, {})
    with torch.device("meta"):
        params = AutoModelForCausalLM.from_config(config).num_parameters()
    return {
        "name": name,
        "architecture": spec.model_type,
        "params": params,
        "hidden_size": config.hidden_size,
        "num_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": getattr(config, "num_key_value_heads", config.num_attention_heads),
        "vocab_size": config.vocab_size,
        "tokenizer": spec.tokenizer,
        "purpose": spec.purpose,
    }
