"""Reference vectors made by the reference avp 0.6.2 (tests/data/reference) and their recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

REFERENCE_DIR = Path(__file__).parent / "data" / "reference"
MANIFEST: dict[str, Any] = json.loads((REFERENCE_DIR / "manifest.json").read_text())
VECTORS: list[dict[str, Any]] = MANIFEST["vectors"]


def recipe(shape: list[int], layer: int, kv: int, dtype: torch.dtype) -> torch.Tensor:
    """The manifest's deterministic tensor: exact in f32, f16 and bf16."""
    count = 1
    for dim in shape:
        count *= dim
    index = torch.arange(count)
    values = ((index * 7 + layer * 13 + kv * 5) % 251 - 125).to(torch.float32) / 16
    return values.to(dtype).reshape(shape)


def expected_tensors(vector: dict[str, Any]) -> Any:
    """The tensors a vector holds: a hidden tensor, or per-layer (k, v) pairs."""
    dtype = getattr(torch, vector["dtype"])
    if vector["kind"] == "hidden":
        return recipe(vector["shape"], 0, 0, dtype)
    keys = [t for t in vector["tensors"] if t["kv"] == 0]
    return [
        (recipe(t["shape"], t["layer"], 0, dtype), recipe(t["shape"], t["layer"], 1, dtype))
        for t in keys
    ]


def metadata_kwargs(vector: dict[str, Any]) -> dict[str, Any]:
    """The user-settable metadata a vector was written with."""
    meta = vector["metadata"]
    names = (
        "session_id",
        "source_agent_id",
        "target_agent_id",
        "model_id",
        "hidden_dim",
        "num_layers",
        "avp_map_id",
        "extra",
    )
    return {name: meta[name] for name in names}
