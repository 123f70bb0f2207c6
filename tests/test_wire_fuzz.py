"""Property tests: random and mutated bytes either decode or raise DecodeError, quickly."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avp_core import DecodeError, wire

SEEDS = [
    wire.encode_kv_cache(
        [(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))] * 2,
        token_ids=[1, 2, 3],
        text="t",
        model_id="m",
    ),
    wire.encode_kv_cache([(torch.randn(1, 2, 3, 4).half(),) * 2], compression=3),
    wire.encode_kv_cache(
        [(torch.randn(1, 1, 2, 4), torch.randn(1, 1, 2, 2)), (torch.randn(1, 2, 2, 4),) * 2]
    ),
    wire.encode_hidden_state(torch.randn(1, 3, 8), avp_map_id="map", compression=1),
    wire.encode_hidden_state(torch.randn(2, 8).bfloat16(), extra={"k": "v"}),
]
LIMIT = 1 << 20
FUZZ = settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def _decode_fully(data: bytes) -> None:
    try:
        message = wire.decode(data, max_bytes=LIMIT)
    except DecodeError:
        return
    if message.is_kv_cache:
        for k, v in message.kv_cache():
            assert k.dim() == 4 and v.dim() == 4
    else:
        message.hidden_state()
    message.last_hidden()


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(data):
    _decode_fully(data)


@FUZZ
@given(st.binary(max_size=64))
def test_random_bytes_behind_a_valid_header(tail):
    _decode_fully(
        b"AV\x01\x04" + len(tail).to_bytes(4, "little") + (3).to_bytes(4, "little") + tail
    )


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0),
            st.integers(min_value=0, max_value=255),
            st.sampled_from(["set", "insert", "delete"]),
        ),
        min_size=1,
        max_size=6,
    ),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_mutated_messages(seed, edits, cut):
    data = bytearray(seed)
    for position, value, kind in edits:
        if not data:
            break
        index = position % len(data)
        if kind == "set":
            data[index] = value
        elif kind == "insert":
            data.insert(index, value)
        else:
            del data[index]
    if cut is not None and data:
        data = data[: cut % len(data)]
    _decode_fully(bytes(data))
