"""Wire codec: round trips, extensions, zero-copy decoding and clear errors on bad input."""

from __future__ import annotations

import struct
import zlib

import pytest
import torch
from vectors import frame, split

from avp_core import DecodeError, EncodeError, ModelIdentity, wire
from avp_core.wire.header import HEADER_SIZE


def make_kv(layers=3, heads=2, seq=5, dim=8, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(1, heads, seq, dim, generator=gen).to(dtype),
            torch.randn(1, heads, seq, dim, generator=gen).to(dtype),
        )
        for _ in range(layers)
    ]


IDENTITY = ModelIdentity("qwen2", 3, 64, 2, 8, 4096, "w" * 32, "t" * 32, "c" * 32, "float32", "m")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("level", [None, 1, 3, 19])
def test_kv_round_trip(dtype, level):
    kv = make_kv(dtype=dtype)
    message = wire.decode(wire.encode_kv_cache(kv, compression=level, session_id="s"))
    assert (
        message.metadata.dtype.name
        == {torch.float32: "FLOAT32", torch.float16: "FLOAT16", torch.bfloat16: "BFLOAT16"}[dtype]
    )
    assert message.metadata.compression == ("zstd" if level else None)
    assert message.metadata.num_layers == 3
    for (k, v), (dk, dv) in zip(kv, message.kv_cache()):
        assert torch.equal(k, dk) and torch.equal(v, dv)


def test_extensions_survive_and_v1_fields_stay_readable():
    kv = make_kv()
    last = torch.randn(64)
    data = wire.encode_kv_cache(
        kv,
        token_ids=[1, 2, 3, 70000],
        identity=IDENTITY,
        latent_steps=2,
        text="hello",
        created_at=12.5,
        last_hidden=last,
        model_id="m",
        extra={"a": "b"},
    )
    meta = wire.decode(data).metadata
    assert meta.token_ids == (1, 2, 3, 70000)
    assert meta.identity == IDENTITY
    assert meta.latent_steps == 2 and meta.text == "hello" and meta.created_at == 12.5
    assert torch.equal(wire.decode(data).last_hidden(), last)
    # The reference decoder reads such messages too: tests/interop (tox -e interop).


def test_non_uniform_layers_round_trip():
    kv = [
        (torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)),
        (torch.randn(1, 4, 3, 16), torch.randn(1, 4, 3, 12)),  # other heads, seq, k/v dims
    ]
    message = wire.decode(wire.encode_kv_cache(kv, compression=3))
    assert [tuple(k.shape) for k, _ in message.kv_cache()] == [(1, 2, 5, 8), (1, 4, 3, 16)]
    assert len(message.metadata.layers) == 2
    for (k, v), (dk, dv) in zip(kv, message.kv_cache()):
        assert torch.equal(k, dk) and torch.equal(v, dv)


def test_dynamic_cache_and_non_contiguous_tensors_encode():
    from transformers import DynamicCache

    kv = make_kv(seq=9)
    cache = DynamicCache()
    for index, (k, v) in enumerate(kv):
        cache.update(k, v, index)
    assert wire.encode_kv_cache(cache) == wire.encode_kv_cache(kv)
    sliced = [(k[:, :, :4], v[:, :, :4]) for k, v in kv]  # views, not contiguous
    assert not sliced[0][0].is_contiguous()
    decoded = wire.decode(wire.encode_kv_cache(sliced)).kv_cache()
    assert all(torch.equal(a, b) for p, q in zip(sliced, decoded) for a, b in zip(p, q))


def test_hidden_state_round_trip_and_views():
    hidden = torch.randn(1, 4, 16)
    data = wire.encode_hidden_state(hidden, model_id="m")
    message = wire.decode(data)
    assert message.metadata.tensor_shape == (1, 4, 16) and message.metadata.hidden_dim == 16
    decoded = message.hidden_state()
    assert torch.equal(decoded, hidden)
    # zero-copy: the tensor's memory lies inside the input buffer
    buffer = bytearray(data)
    view = wire.decode(buffer).hidden_state()
    view_addr = view.data_ptr()
    import ctypes

    base = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    assert base <= view_addr < base + len(buffer)
    copied = wire.decode(buffer, copy=True).hidden_state()
    assert not base <= copied.data_ptr() < base + len(buffer)


def test_encode_rejects_bad_input_clearly():
    with pytest.raises(EncodeError, match="float32, float16 or bfloat16"):
        wire.encode_kv_cache([(torch.zeros(1, 1, 1, 1, dtype=torch.int32),) * 2])
    with pytest.raises(EncodeError, match="batch size must be 1"):
        wire.encode_kv_cache([(torch.zeros(2, 1, 1, 1),) * 2])
    with pytest.raises(EncodeError, match="unknown metadata fields"):
        wire.encode_kv_cache(make_kv(), sesion_id="typo")
    with pytest.raises(EncodeError, match="share one dtype"):
        wire.encode_kv_cache([(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1).half())])
    with pytest.raises(EncodeError, match="compression"):
        wire.encode_kv_cache(make_kv(), compression="fast")
    with pytest.raises(EncodeError, match="no layers"):
        wire.encode_kv_cache([])


# -- decoding bad input ----------------------------------------------------------------------


def _reframe(
    data: bytes, *, flags=None, payload_length=None, metadata_length=None, magic=b"AV", version=1
) -> bytes:
    _, _, f, p, m = struct.unpack_from("<2sBBII", data)
    header = struct.pack(
        "<2sBBII",
        magic,
        version,
        f if flags is None else flags,
        p if payload_length is None else payload_length,
        m if metadata_length is None else metadata_length,
    )
    return header + data[HEADER_SIZE:]


def _with_metadata(data: bytes, **changes) -> bytes:
    """Re-encode a message's metadata with fields changed (raw protobuf), fixing lengths."""
    from avp_core.wire.schema import MetadataProto

    flags, meta, rest = split(data)
    proto = MetadataProto.FromString(meta)
    for name, value in changes.items():
        if name == "clear":
            proto.ClearField(value)
        elif isinstance(value, list):
            del getattr(proto, name)[:]
            getattr(proto, name).extend(value)
        else:
            setattr(proto, name, value)
    return frame(proto.SerializeToString(), rest, flags)


GOOD = wire.encode_kv_cache(make_kv(), model_id="m")
GOOD_ZSTD = wire.encode_kv_cache(make_kv(), compression=3)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "truncated"),
        (GOOD[:11], "truncated"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\0", "trailing"),
        (_reframe(GOOD, magic=b"XX"), "magic"),
        (_reframe(GOOD, version=2), "version"),
        (_reframe(GOOD, flags=0x04 | 0x80), "unknown header flags"),
        (_reframe(GOOD, flags=0), "KV flag"),
        (_reframe(GOOD, flags=0x04 | 0x01), "compressed flag"),
        (_reframe(GOOD, flags=0x04 | 0x02), "map flag"),
        (_reframe(GOOD, metadata_length=len(GOOD)), "exceeds the payload"),
        (_with_metadata(wire.encode_kv_cache(make_kv(dtype=torch.float16)), dtype=2), "dtype"),
        (_with_metadata(GOOD, dtype=9), "unknown dtype value 9"),
        (_with_metadata(GOOD, payload_type=7), "unknown payload_type"),
        (_with_metadata(GOOD, mode=5), "unknown mode"),
        (_with_metadata(GOOD, payload_checksum=1), "checksum mismatch"),
        (_with_metadata(GOOD, compression="lz4"), "unknown compression"),
        (_with_metadata(GOOD, identity_json="{not json"), "identity"),
        (_with_metadata(GOOD_ZSTD, clear="compression"), "compressed flag"),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_decode_rejects_bad_messages(data, match):
    with pytest.raises(DecodeError, match=match):
        wire.decode(data)


def test_shape_byte_count_mismatch_is_detected():
    # A KV header that claims more sequence than the bytes hold, checksum fixed up.
    meta_len = struct.unpack_from("<I", GOOD, 8)[0]
    start = HEADER_SIZE + meta_len
    section = bytearray(GOOD[start:])
    struct.pack_into("<I", section, 12, 6)  # seq_len 5 -> 6
    data = _with_metadata(GOOD[:start] + bytes(section), payload_checksum=zlib.crc32(section))
    with pytest.raises(DecodeError, match=r"needs? .* tensor bytes"):
        wire.decode(data)
    hidden = wire.encode_hidden_state(torch.zeros(1, 4, 16))
    with pytest.raises(DecodeError, match="tensor_shape"):
        wire.decode(_with_metadata(hidden, tensor_shape=[1, 4, 17]))


def test_zstd_bomb_is_refused_before_allocation():
    big = wire.encode_hidden_state(torch.zeros(1, 1024, 1024), compression=3)  # 4 MiB of zeros
    assert len(big) < 10_000
    with pytest.raises(DecodeError, match="max_bytes"):
        wire.decode(big, max_bytes=1 << 20, max_expansion=1 << 20)
    with pytest.raises(DecodeError, match="max_expansion"):
        wire.decode(big)
    trusted = wire.decode(big, max_bytes=8 << 20, max_expansion=1 << 20)
    assert trusted.hidden_state().shape == (1, 1024, 1024)


def test_corrupt_zstd_frame_is_a_decode_error():
    meta_len = struct.unpack_from("<I", GOOD_ZSTD, 8)[0]
    start = HEADER_SIZE + meta_len
    broken = bytearray(GOOD_ZSTD)
    for i in range(start + 8, len(broken)):
        broken[i] ^= 0x5A
    with pytest.raises(DecodeError):
        wire.decode(bytes(broken))
    with pytest.raises(DecodeError, match="not a zstd frame"):
        wire.decode(GOOD_ZSTD[:start] + b"\0" * (len(GOOD_ZSTD) - start))


def test_oversized_input_is_refused():
    with pytest.raises(DecodeError, match="max_bytes"):
        wire.decode(GOOD, max_bytes=100)


def test_kv_dtype_left_at_its_default_defers_to_the_section():
    # AVP v1 writers may leave metadata dtype at FLOAT32 (proto3 default) for f16/bf16 caches.
    kv = make_kv(dtype=torch.bfloat16)
    message = wire.decode(_with_metadata(wire.encode_kv_cache(kv), dtype=0))
    assert message.metadata.dtype.name == "BFLOAT16"
    assert all(torch.equal(a, b) for p, q in zip(kv, message.kv_cache()) for a, b in zip(p, q))


def test_zstd_frame_without_content_size_is_refused():
    import zstandard

    meta_len = struct.unpack_from("<I", GOOD_ZSTD, 8)[0]
    start = HEADER_SIZE + meta_len
    raw = wire.decode(GOOD_ZSTD).payload.tobytes()
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(raw)
    body = GOOD_ZSTD[HEADER_SIZE:start] + frame
    data = struct.pack("<2sBBII", b"AV", 1, 0x05, len(body), meta_len) + body
    with pytest.raises(DecodeError, match="content size"):
        wire.decode(data)


def test_write_kv_cache_writes_encode_kv_cache_bytes_into_a_buffer_or_a_file(tmp_path):
    import io
    import mmap

    kv = [(torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8))] * 3
    options = {"token_ids": [1, 2, 3, 4, 5], "text": "t", "compression": 3, "key": b"k" * 16}
    expected = wire.encode_kv_cache(kv, **options)
    buffer = bytearray(len(expected) + 7)
    assert wire.write_kv_cache(buffer, kv, **options) == len(expected)
    assert bytes(buffer[: len(expected)]) == expected
    stream = io.BytesIO()
    assert wire.write_kv_cache(stream, kv, **options) == len(expected)
    assert stream.getvalue() == expected
    path = tmp_path / "kv.avp"
    path.write_bytes(bytes(len(expected)))
    with path.open("r+b") as file, mmap.mmap(file.fileno(), 0) as mapped:
        wire.write_kv_cache(mapped, kv, **options)
    assert path.read_bytes() == expected
    with pytest.raises(EncodeError, match=f"hold {len(expected)} bytes"):
        wire.write_kv_cache(bytearray(10), kv, **options)
    with pytest.raises(EncodeError, match="read-only"):
        wire.write_kv_cache(bytes(len(expected)), kv, **options)
    with pytest.raises(EncodeError, match="writable buffer or a binary file"):
        wire.write_kv_cache(object(), kv, **options)
