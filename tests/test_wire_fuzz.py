"""Property tests: random and mutated bytes either decode or raise DecodeError, quickly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
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


SIGNED = wire.encode_kv_cache(
    [(torch.randn(1, 2, 3, 4),) * 2], token_ids=[1, 2, 3], key=b"k" * 16, compression=1
)


@FUZZ
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_changed_byte_of_a_signed_message_is_refused(position, flip):
    data = bytearray(SIGNED)
    data[position % len(data)] ^= flip
    with pytest.raises(DecodeError):
        wire.decode(bytes(data), key=b"k" * 16)


def test_the_mutation_fuzzer_finds_only_decode_errors():
    """5,000 structured mutations (tests/fuzz_wire.py) in a fresh process: every failure is
    a DecodeError, no case takes 1 s, and peak memory grows by less than 64 MiB."""
    script = Path(__file__).with_name("fuzz_wire.py")
    out = subprocess.run(
        [sys.executable, str(script), "--cases", "5000", "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["other_exceptions"] == []
    assert summary["counts"]["decode-error"] > 3000 and summary["counts"]["ok"] > 100
    assert summary["slowest_s"] < 1.0, summary["slowest_case"]
    assert summary["rss_growth_mib"] < 64
