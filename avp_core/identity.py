"""Model identity: what a receiver must know to decide whether a KV-cache is usable.

Two agents can share KV only if they run the same weights with the same tokenizer and
chat template. :class:`ModelIdentity` records the architecture plus three fingerprints:

- weights: every parameter's name and shape, plus its values as float32 (all of them for
  tensors up to ``FULL_HASH_ELEMENTS`` elements, an evenly strided sample of larger ones).
  Values are hashed as float32 so a checkpoint loaded in bf16 and upcast to fp32 keeps its
  fingerprint, while a lossy cast or any fine-tune changes it. The dtype the model runs in
  is recorded separately (``dtype``) because KV can be cast between dtypes.
- tokenizer: vocabulary, merges, normalisation and special tokens.
- chat template: the template text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import AVPError

FULL_HASH_ELEMENTS = 1 << 20
SAMPLE_ELEMENTS = 2048
_DIGEST_BYTES = 16


def _digest() -> Any:
    return hashlib.blake2b(digest_size=_DIGEST_BYTES)


@dataclass(frozen=True)
class ModelIdentity:
    """Architecture and fingerprints of a model + tokenizer + chat template."""

    model_type: str
    num_layers: int
    hidden_size: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    weights_fingerprint: str
    tokenizer_fingerprint: str
    template_fingerprint: str
    dtype: str = "float32"
    model_id: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A small JSON-able dict (for framework messages and the wire extension)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIdentity:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing ones are an error."""
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.name not in ("dtype", "model_id")}
        if not isinstance(data, dict):
            raise AVPError(f"model identity must be a JSON object, got {type(data).__name__}")
        missing = required - set(data)
        if missing:
            raise AVPError(f"model identity is missing {sorted(missing)}; got keys {sorted(data)}")
        values = {k: v for k, v in data.items() if k in names}
        for f in fields(cls):
            if f.name in values:
                _check_field(f.name, values[f.name], int if f.type == "int" else str)
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelIdentity:
        return cls.from_dict(json.loads(text))

    @property
    def architecture(self) -> tuple[str, int, int, int, int, int]:
        return (
            self.model_type,
            self.num_layers,
            self.hidden_size,
            self.num_kv_heads,
            self.head_dim,
            self.vocab_size,
        )

    def short(self) -> str:
        """A one-line description for logs and reprs."""
        name = self.model_id or self.model_type
        return (
            f"{name}[{self.weights_fingerprint[:8]}/{self.tokenizer_fingerprint[:8]}/{self.dtype}]"
        )


def _check_field(name: str, value: Any, kind: type) -> None:
    """Identity fields come from the wire: ints in [0, 2**31), strings of at most 256 chars."""
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 31:
            raise AVPError(f"model identity field {name} must be an int in [0, 2**31)")
    elif not isinstance(value, str) or len(value) > 256:
        raise AVPError(f"model identity field {name} must be a string of at most 256 characters")


def weights_fingerprint(model: Any) -> str:
    """Fingerprint of a torch module's parameters (names, shapes, float32 values or samples)."""
    import torch

    digest = _digest()
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            if not torch.is_floating_point(tensor):
                continue
            digest.update(f"{name}:{tuple(tensor.shape)};".encode())
            flat = tensor.detach().reshape(-1)
            if flat.numel() > FULL_HASH_ELEMENTS:
                stride = flat.numel() // SAMPLE_ELEMENTS
                flat = torch.cat([flat[::stride][:SAMPLE_ELEMENTS], flat[-1:]])
            values = flat.to(device="cpu", dtype=torch.float32).contiguous()
            digest.update(values.numpy().tobytes())
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Fingerprint of a tokenizer's vocabulary, merges, normalisation and special tokens."""
    digest = _digest()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
        digest.update(json.dumps(spec, sort_keys=True).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    specials = {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())}
    digest.update(json.dumps(specials, sort_keys=True).encode())
    return digest.hexdigest()


def template_fingerprint(tokenizer: Any) -> str:
    """Fingerprint of the tokenizer's chat template ("" hashes as no template)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if not isinstance(template, str):
        template = json.dumps(template, sort_keys=True)
    return _digest_text(template)


def _digest_text(text: str) -> str:
    digest = _digest()
    digest.update(text.encode())
    return digest.hexdigest()


def _display_name(name_or_path: str) -> str:
    """Hub ids stay as they are; local paths keep only their last component (no user paths)."""
    name = str(name_or_path or "").rstrip("/\\")
    if name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1:
        return name.replace("\\", "/").rsplit("/", 1)[-1]
    return name


def extract_model_identity(model: Any, tokenizer: Any, *, model_id: str = "") -> ModelIdentity:
    """Compute the :class:`ModelIdentity` of a Hugging Face causal LM and its tokenizer."""
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = text_config.num_attention_heads
    hidden = text_config.hidden_size
    kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
    head_dim = getattr(text_config, "head_dim", None) or hidden // heads
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    return ModelIdentity(
        model_type=str(text_config.model_type),
        num_layers=int(text_config.num_hidden_layers),
        hidden_size=int(hidden),
        num_kv_heads=int(kv_heads),
        head_dim=int(head_dim),
        vocab_size=int(text_config.vocab_size),
        weights_fingerprint=weights_fingerprint(model),
        tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
        template_fingerprint=template_fingerprint(tokenizer),
        dtype=dtype,
        model_id=model_id or _display_name(getattr(config, "_name_or_path", "")),
    )
