"""Generate interop test vectors with the reference AVP encoder (PyPI ``avp==0.6.2``).

Run with the interpreter of the separate reference venv (it is *not* a
dependency of avp-suite and is never imported by our package or tests)::

    /work/refvenv/bin/python tests/data/reference/make_vectors.py

It (re)writes ``*.avp`` and ``manifest.json`` next to this file.  The
manifest records, for every vector, the header fields, every metadata value
the reference wrote, and a tensor *recipe* from which our tests can rebuild
the exact expected tensors without the reference package:

    value[i] = ((i * 7 + layer * 13 + kv * 5) % 251 - 125) / 16

where ``i`` is the row-major flat index *within one tensor* (restarting at 0
for every tensor), ``layer`` is the layer index (0 for hidden states) and
``kv`` is 0 for K (and hidden states), 1 for V.  The values are multiples of
1/16 with magnitude <= 7.8125, so they are exact in float32, float16 and
bfloat16.  They are computed in float32 and then cast to the target dtype.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

import avp
from avp import avp_pb2
from avp.codec import encode_kv_cache
from avp.context import AVPContext
from avp.kv_cache import deserialize_kv_cache, serialize_kv_cache
from avp.types import (
    AVPMetadata,
    CommunicationMode,
    CompressionLevel,
    DataType,
    PayloadType,
)

OUT = Path(__file__).resolve().parent
RECIPE = "((i * 7 + layer * 13 + kv * 5) % 251 - 125) / 16"

DTYPES = {  # name -> (torch dtype, wire DataType)
    "float32": (torch.float32, DataType.FLOAT32),
    "float16": (torch.float16, DataType.FLOAT16),
    "bfloat16": (torch.bfloat16, DataType.BFLOAT16),
}

# Small, fixed shapes.
KV = dict(num_layers=3, num_kv_heads=2, seq_len=5, head_dim=8)
HIDDEN_SHAPE = (1, 4, 16)
HIDDEN_DIM = 16
MODEL_ID = "avp-suite/tiny-test-model"
# NOTE: the reference serializes the protobuf `extra` map in a per-process
# random order (upb hash map, SerializeToString() without deterministic=True).
# Vectors with a single extra entry are therefore byte-reproducible; those
# with several entries are not (manifest: "byte_reproducible").
EXTRA = {"suite": "avp-suite"}
EXTRA_MULTI = {"purpose": "interop-vector", "suite": "avp-suite"}


def recipe_tensor(shape, dtype, layer=0, kv=0):
    """Deterministic tensor of ``shape`` per RECIPE (exact in f32/f16/bf16)."""
    n = int(np.prod(shape))
    i = torch.arange(n, dtype=torch.int64)
    vals = ((i * 7 + layer * 13 + kv * 5) % 251 - 125).to(torch.float32) / 16
    return vals.reshape(shape).to(dtype)


def le_bytes(t: torch.Tensor) -> bytes:
    """Contiguous little-endian bytes of a tensor (bf16 viewed as int16)."""
    t = t.contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    a = t.numpy()
    return a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def level_of(compression: CompressionLevel):
    return None if compression == CompressionLevel.NONE else compression.value


def describe(data: bytes) -> dict:
    """Header + metadata exactly as the reference decoder sees them."""
    msg = avp.decode(data)
    h, m = msg.header, msg.metadata
    wire = avp_pb2.Metadata()
    wire.ParseFromString(data[12 : 12 + h.metadata_length])
    return {
        "header": {
            "magic": h.magic.hex(),
            "version": h.version,
            "flags": h.flags,
            "payload_length": h.payload_length,
            "metadata_length": h.metadata_length,
        },
        "metadata": {
            "session_id": m.session_id,
            "source_agent_id": m.source_agent_id,
            "target_agent_id": m.target_agent_id,
            "model_id": m.model_id,
            "hidden_dim": m.hidden_dim,
            "num_layers": m.num_layers,
            "payload_type": m.payload_type.name,
            "payload_type_value": int(m.payload_type),
            "dtype": m.dtype.name,
            "dtype_value": int(m.dtype),
            "tensor_shape": list(m.tensor_shape),
            "mode": m.mode.name,
            "mode_value": int(m.mode),
            "avp_map_id": m.avp_map_id,
            "extra": dict(sorted(m.extra.items())),
            # Proto-level values (decode() derives `compression` from the flag).
            "compression_field": wire.compression if wire.HasField("compression") else None,
            "payload_checksum": wire.payload_checksum if wire.HasField("payload_checksum") else None,
        },
        # Field numbers present on the wire, in serialized order.
        "wire_fields": [f.number for f, _ in wire.ListFields()],
        "uncompressed_payload_sha256": sha(msg.payload),
        "uncompressed_payload_length": len(msg.payload),
    }


def common_meta(name: str, dtype: DataType, extra=EXTRA, **kw) -> AVPMetadata:
    return AVPMetadata(
        session_id=f"sess-{name}",
        source_agent_id="agent-ref-sender",
        target_agent_id="agent-ref-receiver",
        model_id=MODEL_ID,
        dtype=dtype,
        mode=CommunicationMode.LATENT,
        extra=dict(extra),
        **kw,
    )


def make_hidden(name, dtype_name, compression, avp_map_id="", extra=EXTRA):
    tdtype, wdtype = DTYPES[dtype_name]
    t = recipe_tensor(HIDDEN_SHAPE, tdtype)
    meta = common_meta(
        name, wdtype, extra,
        hidden_dim=HIDDEN_DIM,
        num_layers=KV["num_layers"],
        payload_type=PayloadType.HIDDEN_STATE,
        tensor_shape=HIDDEN_SHAPE,
        avp_map_id=avp_map_id,
    )
    data = avp.encode(le_bytes(t), meta, compression)
    entry = {
        "kind": "hidden",
        "dtype": dtype_name,
        "shape": list(HIDDEN_SHAPE),
        "tensors": [{"name": "hidden", "layer": 0, "kv": 0, "shape": list(HIDDEN_SHAPE),
                     "sha256": sha(le_bytes(t))}],
        "encoder_call": "avp.encode(raw_le_bytes, AVPMetadata(...), compression)",
    }
    return data, entry


def kv_cache(tdtype):
    shape = (1, KV["num_kv_heads"], KV["seq_len"], KV["head_dim"])
    return tuple(
        (recipe_tensor(shape, tdtype, layer, 0), recipe_tensor(shape, tdtype, layer, 1))
        for layer in range(KV["num_layers"])
    ), shape


def kv_entry(dtype_name, cache, shape, encoder_call):
    tensors = []
    for layer, (k, v) in enumerate(cache):
        for kv, t in ((0, k), (1, v)):
            tensors.append({"name": f"layer{layer}.{'kv'[kv]}", "layer": layer, "kv": kv,
                            "shape": list(shape), "sha256": sha(le_bytes(t))})
    return {
        "kind": "kv",
        "dtype": dtype_name,
        "kv": dict(KV),
        "tensor_shape_per_kv": list(shape),
        "tensors": tensors,
        "encoder_call": encoder_call,
    }


def make_kv(name, dtype_name, compression):
    tdtype, wdtype = DTYPES[dtype_name]
    cache, shape = kv_cache(tdtype)
    kv_bytes, _hdr = serialize_kv_cache(cache)
    meta = common_meta(name, wdtype, hidden_dim=HIDDEN_DIM, num_layers=KV["num_layers"])
    data = encode_kv_cache(kv_bytes, meta, compression)
    return data, kv_entry(dtype_name, cache, shape,
                          "avp.codec.encode_kv_cache(serialize_kv_cache(cache)[0], AVPMetadata(...), compression)")


def make_kv_context(dtype_name):
    """The reference's high-level path: AVPContext.to_bytes() (never compresses)."""
    tdtype, _ = DTYPES[dtype_name]
    cache, shape = kv_cache(tdtype)
    ctx = AVPContext(past_key_values=cache, model_hash="0" * 64, num_steps=4,
                     seq_len=KV["seq_len"], model_family="tinytest",
                     hidden_dim=HIDDEN_DIM, num_layers=KV["num_layers"])
    data = ctx.to_bytes(session_id="sess-ctx", source_agent_id="agent-ref-sender",
                        target_agent_id="agent-ref-receiver", model_id=MODEL_ID)
    return data, kv_entry(dtype_name, cache, shape, "avp.context.AVPContext(...).to_bytes(...)")


def check_roundtrip(data: bytes, entry: dict) -> None:
    """Sanity: the reference decoder gives back the recipe tensors."""
    msg = avp.decode(data)
    if entry["kind"] == "kv":
        layers, _ = deserialize_kv_cache(msg.payload)
        got = [t for pair in layers for t in pair]
    else:
        got = [msg.payload]
    for t, spec in zip(got, entry["tensors"], strict=True):
        b = t if isinstance(t, bytes) else le_bytes(t)
        assert sha(b) == spec["sha256"], (entry, spec["name"])


def main() -> int:
    N, BAL, FAST = CompressionLevel.NONE, CompressionLevel.BALANCED, CompressionLevel.FAST
    jobs = []
    for d in ("float32", "float16", "bfloat16"):
        short = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}[d]
        for comp, suffix in ((N, ""), (BAL, "_zstd")):
            jobs.append((f"hidden_{short}{suffix}", lambda n, d=d, c=comp: make_hidden(n, d, c), comp))
            jobs.append((f"kv_{short}{suffix}", lambda n, d=d, c=comp: make_kv(n, d, c), comp))
    # FLAG_HAS_MAP (avp_map_id set) with FLAG_COMPRESSED at level 1; 2 extra entries.
    jobs.append(("hidden_f32_map_zstd_fast",
                 lambda n: make_hidden(n, "float32", FAST, avp_map_id="map-test-0001",
                                       extra=EXTRA_MULTI), FAST))
    # High-level reference path (extra = model_hash/model_family/num_steps).
    jobs.append(("kv_f16_context", lambda n: make_kv_context("float16"), N))

    for old in OUT.glob("*.avp"):
        old.unlink()
    vectors = []
    for name, fn, comp in jobs:
        data, entry = fn(name)
        check_roundtrip(data, entry)
        fname = f"{name}.avp"
        (OUT / fname).write_bytes(data)
        vectors.append({
            "file": fname,
            **entry,
            "compression": "none" if comp == N else "zstd",
            "zstd_level": level_of(comp),
            "file_size": len(data),
            "file_sha256": sha(data),
            # False when >1 extra entries (reference map order is random per run).
            "byte_reproducible": len(avp.decode(data).metadata.extra) <= 1,
            **describe(data),
        })

    manifest = {
        "generator": "tests/data/reference/make_vectors.py",
        "reference": {"package": "avp", "version": avp.__version__},
        "environment": {"python": sys.version.split()[0], "torch": torch.__version__,
                        "numpy": np.__version__},
        "recipe": {
            "formula": RECIPE,
            "index": "row-major flat index within each tensor, restarting at 0 per tensor",
            "layer": "layer index (0 for hidden states)",
            "kv": "0 for K and hidden states, 1 for V",
            "compute": "int64 arithmetic, then float32 divide by 16, then cast to target dtype",
        },
        "kv_payload_order": "17-byte '<IIIIB' header (num_layers, num_kv_heads, head_dim, seq_len, "
                            "dtype_byte) then K_l0, V_l0, K_l1, V_l1, ... each [heads, seq, head_dim]",
        "vectors": vectors,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    print(f"wrote {len(vectors)} vectors + manifest.json to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
