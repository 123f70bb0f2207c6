"""Model identity of a Hugging Face model: its fingerprints, read from the model itself.

Engine-specific, so it lives with the Hugging Face connector; :mod:`avp_core.identity` holds
the neutral :class:`~avp_core.identity.ModelIdentity` these functions fill in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..identity import ModelIdentity

FULL_HASH_ELEMENTS = 1 << 20
SAMPLE_ELEMENTS = 2048
_DIGEST_BYTES = 16


def _digest() -> Any:
    return hashlib.blake2b(digest_size=_DIGEST_BYTES)


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
