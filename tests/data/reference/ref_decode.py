"""Decode .avp files with the reference AVP package (PyPI ``avp==0.6.2``).

Run with the reference venv's interpreter, e.g.::

    /work/refvenv/bin/python tests/data/reference/ref_decode.py a.avp b.avp

For each file one JSON line is printed on stdout with the header, the
metadata as the reference decoded it, and per tensor its name, shape, dtype
and the sha256 of its contiguous little-endian bytes (bfloat16 viewed as
int16).  KV payloads go through ``avp.kv_cache.deserialize_kv_cache``;
hidden-state payloads (the reference has no dedicated helper) are read as a
flat little-endian array of the metadata dtype and reshaped to
``tensor_shape`` when that is set and consistent.  A file the reference
rejects yields a line with ``"ok": false`` and the exception type/message;
the exit status is then 1.
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import torch

import avp
from avp.kv_cache import deserialize_kv_cache
from avp.types import DataType, PayloadType

_NP = {DataType.FLOAT32: "<f4", DataType.FLOAT16: "<f2",
       DataType.BFLOAT16: "<i2", DataType.INT8: "i1"}


def tensor_info(name: str, t: torch.Tensor) -> dict:
    dtype = str(t.dtype).replace("torch.", "")
    t = t.contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    a = t.numpy()
    raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    return {"name": name, "shape": list(t.shape), "dtype": dtype,
            "sha256": hashlib.sha256(raw).hexdigest()}


def hidden_tensor(payload: bytes, meta) -> tuple[str, list[int], str]:
    arr = np.frombuffer(payload, dtype=_NP[meta.dtype])
    shape = list(meta.tensor_shape)
    if shape and int(np.prod(shape)) == arr.size:
        arr = arr.reshape(shape)
    dtype = {DataType.FLOAT32: "float32", DataType.FLOAT16: "float16",
             DataType.BFLOAT16: "bfloat16", DataType.INT8: "int8"}[meta.dtype]
    return dtype, list(arr.shape), hashlib.sha256(arr.tobytes()).hexdigest()


def decode_file(path: str) -> dict:
    data = open(path, "rb").read()
    msg = avp.decode(data)
    h, m = msg.header, msg.metadata
    out = {
        "file": path,
        "ok": True,
        "header": {"version": h.version, "flags": h.flags,
                   "payload_length": h.payload_length,
                   "metadata_length": h.metadata_length},
        "metadata": {
            "session_id": m.session_id,
            "source_agent_id": m.source_agent_id,
            "target_agent_id": m.target_agent_id,
            "model_id": m.model_id,
            "hidden_dim": m.hidden_dim,
            "num_layers": m.num_layers,
            "payload_type": m.payload_type.name,
            "dtype": m.dtype.name,
            "tensor_shape": list(m.tensor_shape),
            "mode": m.mode.name,
            "compression": m.compression,
            "avp_map_id": m.avp_map_id,
            "extra": dict(sorted(m.extra.items())),
        },
        "payload_length_uncompressed": len(msg.payload),
        "payload_sha256": hashlib.sha256(msg.payload).hexdigest(),
    }
    if m.payload_type == PayloadType.KV_CACHE:
        layers, kvh = deserialize_kv_cache(msg.payload)
        out["kv_header"] = {"num_layers": kvh.num_layers, "num_kv_heads": kvh.num_kv_heads,
                            "head_dim": kvh.head_dim, "seq_len": kvh.seq_len,
                            "dtype": kvh.dtype}
        out["tensors"] = [tensor_info(f"layer{i}.{n}", t)
                          for i, pair in enumerate(layers) for n, t in zip("kv", pair)]
    else:
        dtype, shape, digest = hidden_tensor(msg.payload, m)
        out["tensors"] = [{"name": "hidden", "shape": shape, "dtype": dtype, "sha256": digest}]
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: ref_decode.py FILE.avp [FILE.avp ...]", file=sys.stderr)
        return 2
    status = 0
    for path in argv:
        try:
            line = decode_file(path)
        except Exception as e:  # report every rejection, keep going
            status = 1
            line = {"file": path, "ok": False, "error_type": type(e).__name__,
                    "error_module": type(e).__module__, "error": str(e)}
        print(json.dumps(line, sort_keys=False), flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
