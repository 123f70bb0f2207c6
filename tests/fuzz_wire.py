"""A deterministic, structured mutation fuzzer for the AVP decoder.

``python tests/fuzz_wire.py --cases 5000 --seed 0`` mutates valid messages where a decoder
is most likely to go wrong -- header fields, KV section header values, metadata fields and
their sizes, splices of two messages, zstd frames, the checksum and the signature -- decodes
each one every way a user can (``decode``, the tensor accessors, ``AVPContext.from_bytes``,
with and without a key) and prints a JSON summary: how many cases decoded or raised
DecodeError, every other exception, the slowest case and the peak RSS growth over the run.
tests/test_wire_fuzz.py runs it in a fresh process and checks the summary.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import struct
import sys
import time
from collections.abc import Callable

import torch
import zstandard
from vectors import frame, split

from avp_core import AVPContext, DecodeError, wire
from avp_core.wire.header import HEADER_SIZE
from avp_core.wire.schema import LayerShapeProto, MetadataProto

KEY = b"fuzz-key-0123456789abcdef"
BOMBS: list[bytes] = []
"""zstd frames of many zeros in few bytes (built before memory is measured)."""
BOUNDARY = (0, 1, 2, 7, 8, 255, 256, 1023, 1024, 1025, 1 << 16, 1 << 31, (1 << 32) - 1)


def seeds() -> list[tuple[bytes, bytes | None]]:
    """Valid messages (and the key they are signed with, if any) covering every section."""
    torch.manual_seed(0)
    identity = {
        "model_type": "qwen2", "num_layers": 2, "hidden_size": 8, "num_kv_heads": 2,
        "head_dim": 4, "vocab_size": 100, "weights_fingerprint": "w" * 32,
        "tokenizer_fingerprint": "t" * 32, "template_fingerprint": "c" * 32,
    }  # fmt: skip
    full = {
        "token_ids": [1, 2, 0xFFFFFFFF], "latent_steps": 1, "text": "t", "identity": identity,
        "created_at": 1.5, "last_hidden": torch.randn(8), "extra": {"k": "v"},
        "session_id": "s", "model_id": "m",
    }  # fmt: skip
    uniform = [(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))] * 2
    mixed = [(torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 2)), (torch.randn(1, 2, 3, 4),) * 2]
    half = [(torch.randn(1, 2, 3, 4).half(),) * 2]
    return [
        (wire.encode_kv_cache(uniform, **full), None),
        (wire.encode_kv_cache(uniform, compression=3, key=KEY, **full), KEY),
        (wire.encode_kv_cache(mixed, token_ids=[5, 6, 7]), None),
        (wire.encode_kv_cache(half, compression=1, token_ids=[1, 2, 3]), None),
        (wire.encode_kv_cache(mixed, key=KEY, token_ids=[5, 6, 7]), KEY),
        (wire.encode_hidden_state(torch.randn(1, 3, 8), avp_map_id="map", compression=1), None),
        (wire.encode_hidden_state(torch.randn(2, 8).bfloat16(), key=KEY), KEY),
    ]


def header_field(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    field = rng.choice(("magic", "version", "flags", "payload", "metadata"))
    if field == "magic":
        out[rng.randrange(2)] = rng.randrange(256)
    elif field == "version":
        out[2] = rng.choice((0, 2, 255))
    elif field == "flags":
        out[3] = rng.randrange(256)
    else:
        offset = 4 if field == "payload" else 8
        struct.pack_into(
            "<I",
            out,
            offset,
            rng.choice((*BOUNDARY, len(data) - 12 + rng.randint(-3, 3))) & 0xFFFFFFFF,
        )
    return bytes(out)


def kv_header_value(rng: random.Random, data: bytes) -> bytes:
    flags, meta, section = split(data)
    if len(section) < 17 or section[:4] == b"\x28\xb5\x2f\xfd":  # compressed: mutate inside
        section = (
            zstandard.ZstdDecompressor().decompress(section)
            if section[:4] == b"\x28\xb5\x2f\xfd"
            else section
        )
        flags &= ~1
        meta = _edit_proto(meta, lambda p: p.ClearField("compression"))
    if len(section) < 17:
        return data
    out = bytearray(section)
    index = rng.randrange(5)
    if index == 4:
        out[16] = rng.choice((0, 1, 2, 3, 255))
    else:
        struct.pack_into("<I", out, index * 4, rng.choice(BOUNDARY))
    meta = (
        _edit_proto(meta, lambda p: p.ClearField("payload_checksum"))
        if rng.random() < 0.7
        else meta
    )
    return frame(meta, bytes(out), flags)


def _edit_proto(meta: bytes, edit: Callable[[MetadataProto], object]) -> bytes:
    proto = MetadataProto()
    proto.ParseFromString(meta)
    proto.ClearField("mac")
    edit(proto)
    return proto.SerializeToString()


def metadata_field(rng: random.Random, data: bytes) -> bytes:
    flags, meta, section = split(data)
    size = rng.choice((1, 2, 9, 100, 1025, 5000, 1 << 16))

    def edit(p: MetadataProto) -> None:
        choice = rng.randrange(12)
        if choice == 0:
            p.tensor_shape.extend([rng.choice(BOUNDARY) for _ in range(min(size, 64))])
        elif choice == 1:
            p.layers.extend([LayerShapeProto(num_kv_heads=rng.choice(BOUNDARY))] * min(size, 4096))
        elif choice == 2:
            p.token_ids.extend([rng.choice(BOUNDARY) for _ in range(size)])
        elif choice == 3:
            p.identity_json = rng.choice(("{", "[]", "1", '{"model_type": 5}', "x" * size))
        elif choice == 4:
            p.text = "é" * size
        elif choice == 5:
            for i in range(min(size, 2048)):
                p.extra[f"k{i}"] = "v"
        elif choice == 6:
            p.last_hidden = bytes(rng.randrange(256) for _ in range(min(size, 999)))
        elif choice == 7:
            p.compression = rng.choice(("", "zstd", "gzip", "z" * size))
        elif choice == 8:
            p.payload_type, p.dtype = rng.randrange(5), rng.randrange(5)
        elif choice == 9:
            p.mode = rng.randrange(4)
        elif choice == 10:
            p.payload_checksum = rng.choice(BOUNDARY)
        else:
            p.latent_steps = rng.choice(BOUNDARY)

    return frame(_edit_proto(meta, edit), section, flags)


def metadata_bytes(rng: random.Random, data: bytes) -> bytes:
    flags, meta, section = split(data)
    out = bytearray(meta)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(3)
        index = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            out[min(index, len(out) - 1)] = rng.choice((0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif kind == 1:
            out[index:index] = bytes([rng.randrange(256)]) * rng.choice((1, 2, 5))
        elif out:
            del out[index : index + rng.randint(1, 3)]
    return frame(bytes(out), section, flags)


def splice(rng: random.Random, data: bytes, other: bytes) -> bytes:
    cut, at = rng.randrange(len(data)), rng.randrange(len(other))
    spliced = data[:cut] + other[at:]
    if rng.random() < 0.5 and len(spliced) >= HEADER_SIZE:
        meta_len = min(struct.unpack_from("<I", spliced, 8)[0], len(spliced) - HEADER_SIZE)
        end = HEADER_SIZE + meta_len
        return frame(spliced[HEADER_SIZE:end], spliced[end:], spliced[3])
    return spliced


def zstd_frame(rng: random.Random, data: bytes) -> bytes:
    flags, meta, section = split(data)
    if section[:4] != b"\x28\xb5\x2f\xfd":
        return data
    kind = rng.randrange(4)
    if kind == 0:  # a frame that claims another size
        raw = zstandard.ZstdDecompressor().decompress(section)
        claimed = rng.choice((0, len(raw) - 1, len(raw) + 1, 1 << 30))
        compressor = zstandard.ZstdCompressor(write_content_size=True).compressobj(size=claimed)
        try:
            section = compressor.compress(raw) + compressor.flush()
        except zstandard.ZstdError:
            section = section[:-4]
    elif kind == 1:  # no recorded size
        raw = zstandard.ZstdDecompressor().decompress(section)
        section = zstandard.ZstdCompressor(write_content_size=False).compress(raw)
    elif kind == 2:  # a bomb: many zeros in few bytes
        section = rng.choice(BOMBS)
    else:
        out = bytearray(section)
        out[rng.randrange(4, len(out))] ^= 1 << rng.randrange(8)
        section = bytes(out)
    return frame(meta, section, flags)


def checksum_or_mac(rng: random.Random, data: bytes) -> bytes:
    flags, meta, section = split(data)
    kind = rng.randrange(4)
    if kind == 0:
        checksum = rng.randrange(1 << 32)
        meta = _edit_proto(meta, lambda p: setattr(p, "payload_checksum", checksum))
        return frame(meta, section, flags)
    if kind == 1:  # a mac that is not last, or a second one
        return frame(meta + b"\x08\x01" + bytes([0xBA, 0x01, 32]) + bytes(32), section, flags)
    if kind == 2 and len(meta) > 35:  # strip or flip the signature
        out = bytearray(meta)
        out[-1 - rng.randrange(32)] ^= 1
        return frame(bytes(out) if rng.random() < 0.5 else meta[:-35], section, flags)
    out = bytearray(section)
    if out:
        out[rng.randrange(len(out))] ^= 1
    return frame(meta, bytes(out), flags)


def truncate_or_extend(rng: random.Random, data: bytes) -> bytes:
    if rng.random() < 0.5:
        return data[: rng.randrange(len(data))]
    return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))


MUTATORS = (
    header_field,
    kv_header_value,
    metadata_field,
    metadata_bytes,
    zstd_frame,
    checksum_or_mac,
    truncate_or_extend,
)


def decode_every_way(data: bytes, key: bytes | None) -> str:
    """'ok' or 'decode-error'; any other exception propagates."""
    try:
        for option in ({}, {"key": key} if key else {"copy": True}):
            message = wire.decode(data, **option)
            if message.is_kv_cache:
                message.kv_cache()
                AVPContext.from_bytes(data, **option)
            else:
                message.hidden_state()
            message.last_hidden()
    except DecodeError:
        return "decode-error"
    return "ok"


def run(cases: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    valid = seeds()
    BOMBS[:] = [zstandard.ZstdCompressor(level=19).compress(bytes(n)) for n in (1 << 20, 1 << 26)]
    for data, key in valid:  # warm up every code path before measuring memory
        assert decode_every_way(data, key) == "ok"
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts = {"ok": 0, "decode-error": 0}
    by_mutator: dict[str, dict[str, int]] = {}
    failures: list[str] = []
    slowest = (0.0, "")
    for case in range(cases):
        data, key = rng.choice(valid)
        mutator = MUTATORS[case % len(MUTATORS)] if case % 8 else None
        mutated = mutator(rng, data) if mutator else splice(rng, data, rng.choice(valid)[0])
        name = mutator.__name__ if mutator else "splice"
        start = time.perf_counter()
        try:
            outcome = decode_every_way(mutated, key)
            counts[outcome] += 1
            tally = by_mutator.setdefault(name, {"ok": 0, "decode-error": 0})
            tally[outcome] += 1
        except Exception as exc:
            failures.append(f"case {case} ({name}): {type(exc).__name__}: {str(exc)[:200]}")
        elapsed = time.perf_counter() - start
        if elapsed > slowest[0]:
            slowest = (elapsed, f"case {case} ({name}, {len(mutated)} bytes)")
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss
    return {
        "cases": cases,
        "seed": seed,
        "counts": counts,
        "by_mutator": by_mutator,
        "other_exceptions": failures,
        "slowest_s": round(slowest[0], 4),
        "slowest_case": slowest[1],
        "rss_growth_mib": round(growth / 1024, 1),  # ru_maxrss is in KiB on Linux
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.cases, args.seed)))


if __name__ == "__main__":
    sys.exit(main())
