"""The reference avp 0.6.2 decodes what we encode (run by `tox -e interop`, which installs it).

Skipped when the reference package is not installed (it needs protobuf >= 6.31, so it lives
in its own tox env), except where ``AVP_SUITE_REQUIRE_REFERENCE=1`` (the interop env sets it):
there a missing reference fails instead of letting the env pass having run nothing.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

if os.environ.get("AVP_SUITE_REQUIRE_REFERENCE") == "1":
    assert importlib.util.find_spec("avp"), "tox -e interop must install the reference avp"
avp = pytest.importorskip(
    "avp", reason="the reference avp 0.6.2 is installed only in tox -e interop"
)
from avp import kv_cache as reference_kv  # noqa: E402

from avp_core import ModelIdentity, wire  # noqa: E402

IDENTITY = ModelIdentity("qwen2", 2, 64, 2, 8, 4096, "w" * 32, "t" * 32, "c" * 32)


def _kv(dtype):
    gen = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(1, 2, 7, 8, generator=gen).to(dtype),
            torch.randn(1, 2, 7, 8, generator=gen).to(dtype),
        )
        for _ in range(2)
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("level", [None, 1, 3, 19])
@pytest.mark.parametrize("key", [None, b"interop-key-0123456789"])
def test_reference_decodes_our_kv_cache(dtype, level, key):
    kv = _kv(dtype)
    data = wire.encode_kv_cache(
        kv,
        compression=level,
        key=key,  # a signature is extension field 23: the reference skips it
        session_id="s1",
        source_agent_id="a",
        target_agent_id="b",
        model_id="tiny",
        hidden_dim=64,
        extra={"k": "v"},
        # our extensions (fields >= 16): the reference must skip them
        token_ids=list(range(7)),
        identity=IDENTITY,
        latent_steps=0,
        text="hi",
        created_at=1.0,
    )
    message = avp.decode(data)
    assert message.metadata.session_id == "s1"
    assert message.metadata.model_id == "tiny"
    assert message.metadata.extra == {"k": "v"}
    layers, _ = reference_kv.deserialize_kv_cache(message.payload)
    assert len(layers) == len(kv)
    for (k, v), (rk, rv) in zip(kv, layers):
        assert rk.dtype == dtype and torch.equal(rk, k) and torch.equal(rv, v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_reference_decodes_our_hidden_state(dtype):
    import numpy as np

    hidden = torch.randn(1, 3, 16).to(dtype)
    message = avp.decode(wire.encode_hidden_state(hidden, compression=3, model_id="tiny"))
    assert list(message.metadata.tensor_shape) == [1, 3, 16]
    np_dtype = {torch.float32: np.float32, torch.float16: np.float16}[dtype]
    decoded = np.frombuffer(message.payload, dtype=np_dtype).reshape(1, 3, 16)
    assert np.array_equal(decoded, hidden.numpy())
