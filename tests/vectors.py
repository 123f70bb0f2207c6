"""Reference vectors made by the reference avp 0.6.2 (tests/data/reference) and their recipe,
and the helpers tests use to take messages apart and put them back together byte by byte."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch

from avp_core.wire.header import HEADER_SIZE, Header

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


def split(data: bytes) -> tuple[int, bytes, bytes]:
    """A message's header flags, metadata and tensor section, as its header delimits them."""
    meta_len = struct.unpack_from("<I", data, 8)[0]
    return data[3], data[HEADER_SIZE : HEADER_SIZE + meta_len], data[HEADER_SIZE + meta_len :]


def frame(meta: bytes, section: bytes = b"", flags: int = 0) -> bytes:
    """A message of ``meta`` and ``section`` under a header whose lengths match them."""
    sizes = {"payload_length": len(meta) + len(section), "metadata_length": len(meta)}
    return Header(flags=flags, **sizes).pack() + meta + section
