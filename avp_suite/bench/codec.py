"""Codec benchmark: round trip of a realistic KV cache, ours vs memcpy, torch.save, reference.

Default cache: 28 layers, 4 KV heads, head_dim 128, 1,024 tokens, bf16 (58.7 MB), the shape
of a 7B-class grouped-query model. Round trip = encode to bytes, then decode to tensors.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from avp_core._args import positive_int

from .common import machine, median_time, table, write_json

REFERENCE_SCRIPT = Path(__file__).with_name("_reference_codec.py")


def make_cache(layers: int, heads: int, dim: int, tokens: int, dtype: str) -> list[tuple[Any, Any]]:
    import torch

    gen = torch.Generator().manual_seed(0)
    shape = (1, heads, tokens, dim)
    return [
        (
            torch.randn(shape, generator=gen).to(getattr(torch, dtype)),
            torch.randn(shape, generator=gen).to(getattr(torch, dtype)),
        )
        for _ in range(layers)
    ]


SIGNING_KEY = b"benchmark-key-0123456789abcdef"


def measure_ours(
    kv: list[tuple[Any, Any]], runs: int, key: bytes | None = None
) -> dict[str, float]:
    """Encode and decode (views, then a copy); with ``key``, signed and checked."""
    from avp_core import wire

    data = wire.encode_kv_cache(kv, key=key)
    encode = median_time(lambda: wire.encode_kv_cache(kv, key=key), runs=runs)
    decode = median_time(lambda: wire.decode(data, key=key).kv_cache(), runs=runs)
    decode_copy = median_time(lambda: wire.decode(data, copy=True, key=key).kv_cache(), runs=runs)
    return {"encode_s": encode, "decode_s": decode, "decode_copy_s": decode_copy}


def measure_into_buffer(kv: list[tuple[Any, Any]], runs: int) -> dict[str, float]:
    """Encode into a reused buffer (``write_kv_cache``), then decode views of it."""
    from avp_core import wire

    size = len(wire.encode_kv_cache(kv))
    buffer = bytearray(size)
    wire.write_kv_cache(buffer, kv)  # the pages exist from here on, as in a reused buffer
    encode = median_time(lambda: wire.write_kv_cache(buffer, kv), runs=runs)
    decode = median_time(lambda: wire.decode(buffer).kv_cache(), runs=runs)
    return {"encode_s": encode, "decode_s": decode}


def measure_limit(kv: list[tuple[Any, Any]], runs: int) -> dict[str, float]:
    """The floor of a checked round trip: one copy of the tensor bytes plus their CRC-32 to
    encode, the CRC-32 alone to decode (decode returns views)."""
    import torch

    from avp_core.wire.checksum import crc32

    flat = torch.cat([t.reshape(-1) for pair in kv for t in pair])
    array: Any = flat.view(torch.uint8).numpy()
    source = memoryview(array).cast("B")
    target = bytearray(len(source))  # reused, as write_kv_cache's buffer is

    def copy() -> None:
        memoryview(target)[:] = source

    copy()
    copied = median_time(copy, runs=runs)
    check = median_time(lambda: crc32(source), runs=runs)
    return {"encode_s": copied + check, "decode_s": check}


def measure_torch_save(kv: list[tuple[Any, Any]], runs: int) -> dict[str, float]:
    import torch

    def save() -> bytes:
        buffer = io.BytesIO()
        torch.save(kv, buffer)
        return buffer.getvalue()

    data = save()
    encode = median_time(save, runs=runs)
    decode = median_time(lambda: torch.load(io.BytesIO(data), weights_only=True), runs=runs)
    return {"encode_s": encode, "decode_s": decode}


def measure_memcpy(kv: list[tuple[Any, Any]], runs: int) -> dict[str, float]:
    import torch

    flat = torch.cat([t.reshape(-1) for pair in kv for t in pair])
    target = torch.empty_like(flat)
    copy = median_time(lambda: target.copy_(flat), runs=runs)
    return {"encode_s": copy, "decode_s": copy}


def measure_reference(python: str, args: argparse.Namespace) -> dict[str, float]:
    command = [
        python,
        str(REFERENCE_SCRIPT),
        str(args.layers),
        str(args.heads),
        str(args.dim),
        str(args.tokens),
        args.dtype,
        str(args.runs),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"reference run failed ({' '.join(command)}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avp-suite bench codec", description=__doc__)
    parser.add_argument("--layers", type=positive_int, default=28)
    parser.add_argument("--heads", type=positive_int, default=4)
    parser.add_argument("--dim", type=positive_int, default=128)
    parser.add_argument("--tokens", type=positive_int, default=1024)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--runs", type=positive_int, default=7)
    parser.add_argument("--reference-python", help="python of a venv with the reference avp 0.6.2")
    parser.add_argument("--out", help="write results JSON here")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)

    kv = make_cache(args.layers, args.heads, args.dim, args.tokens, args.dtype)
    nbytes = sum(t.numel() * t.element_size() for pair in kv for t in pair)
    print(
        f"KV cache: {args.layers} layers x {args.heads} heads x {args.tokens} tokens x "
        f"{args.dim} dim, {args.dtype}: {nbytes / 1e6:.1f} MB; median of {args.runs} runs"
    )
    results = {
        "memcpy": measure_memcpy(kv, args.runs),
        "avp-suite": measure_ours(kv, args.runs),
        "avp-suite, signed": measure_ours(kv, args.runs, SIGNING_KEY),
        "avp-suite into a buffer": measure_into_buffer(kv, args.runs),
        "one copy + CRC (limit)": measure_limit(kv, args.runs),
        "torch.save/load": measure_torch_save(kv, args.runs),
    }
    if args.reference_python:
        results["reference avp 0.6.2"] = measure_reference(args.reference_python, args)
    base = results.get("reference avp 0.6.2", results["torch.save/load"])
    base_name = "reference" if args.reference_python else "torch.save"
    base_rt = base["encode_s"] + base["decode_s"]
    rows = []
    for name, r in results.items():
        round_trip = r["encode_s"] + r["decode_s"]
        rows.append(
            [
                name,
                r["encode_s"] * 1e3,
                r["decode_s"] * 1e3,
                round_trip * 1e3,
                nbytes / round_trip / 1e9,
                base_rt / round_trip,
            ]
        )
    print(
        table(
            ["method", "encode ms", "decode ms", "round trip ms", "GB/s", f"x vs {base_name}"], rows
        )
    )
    ours = results["avp-suite"]
    limit = results["one copy + CRC (limit)"]
    buffered = results["avp-suite into a buffer"]

    def trip(r: dict[str, float]) -> float:
        return r["encode_s"] + r["decode_s"]

    print(
        f"round trip {trip(ours) * 1e3:.1f} ms into a new bytes object, "
        f"{trip(buffered) * 1e3:.1f} ms into a reused buffer (write_kv_cache); "
        f"the one-copy-plus-CRC limit is {trip(limit) * 1e3:.1f} ms "
        f"({trip(buffered) / trip(limit):.2f}x the limit into a buffer)"
    )
    print(
        f"avp-suite decode with a copy of the tensors: {ours['decode_copy_s'] * 1e3:.1f} ms; "
        f"decode (views, checksum verified) vs torch.load: "
        f"{results['torch.save/load']['decode_s'] / ours['decode_s']:.1f}x faster"
    )
    payload = {
        "benchmark": "codec",
        "bytes": nbytes,
        "args": vars(args),
        "results": results,
        "machine": machine(),
    }
    write_json(args.out, payload)
    return payload


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
