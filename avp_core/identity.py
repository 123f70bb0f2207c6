"""Model identity: what a receiver must know to decide whether a KV-cache is usable.

Two agents can share KV only if they run the same weights with the same tokenizer and
chat template. :class:`ModelIdentity` records the architecture plus three fingerprints
(computed for Hugging Face models by :mod:`avp_core.connectors.hf_identity`):

- weights: every parameter's name and shape, plus its values as float32 (all of them for
  tensors up to ``FULL_HASH_ELEMENTS`` elements, an evenly strided sample of larger
  ones).
  Values are hashed as float32 so a checkpoint loaded in bf16 and upcast to fp32 keeps its
  fingerprint, while a lossy cast or any fine-tune changes it. The dtype the model runs in
  is recorded separately (``dtype``) because KV can be cast between dtypes.
- tokenizer: vocabulary, merges, normalisation and special tokens.
- chat template: the template text.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import AVPError


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
