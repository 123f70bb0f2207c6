"""Byte compatibility with the reference avp 0.6.2 (vectors in tests/data/reference)."""

from __future__ import annotations

import pytest
import torch
from vectors import REFERENCE_DIR, VECTORS, expected_tensors, metadata_kwargs

from avp_core import wire


@pytest.mark.parametrize("vector", VECTORS, ids=[v["file"] for v in VECTORS])
def test_reference_message_decodes_to_the_same_tensors_and_metadata(vector):
    message = wire.decode((REFERENCE_DIR / vector["file"]).read_bytes())
    meta, expected = message.metadata, vector["metadata"]
    for name in (
        "session_id",
        "source_agent_id",
        "target_agent_id",
        "model_id",
        "hidden_dim",
        "num_layers",
        "avp_map_id",
        "extra",
        "payload_checksum",
    ):
        assert getattr(meta, name) == expected[name], name
    assert list(meta.tensor_shape) == expected["tensor_shape"]
    assert meta.payload_type.name == expected["payload_type"]
    assert meta.dtype.name == expected["dtype"]
    assert meta.compression == expected["compression_field"]
    assert message.header.flags == vector["header"]["flags"]
    tensors = expected_tensors(vector)
    if vector["kind"] == "hidden":
        assert torch.equal(message.hidden_state(), tensors)
    else:
        decoded = message.kv_cache()
        assert len(decoded) == len(tensors)
        for (k, v), (ek, ev) in zip(decoded, tensors):
            assert k.dtype == ek.dtype and torch.equal(k, ek) and torch.equal(v, ev)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["file"] for v in VECTORS])
def test_we_encode_what_the_reference_encodes(vector):
    tensors = expected_tensors(vector)
    kwargs = metadata_kwargs(vector)
    level = vector["zstd_level"]
    if vector["kind"] == "hidden":
        data = wire.encode_hidden_state(tensors, compression=level, **kwargs)
    else:
        data = wire.encode_kv_cache(tensors, compression=level, **kwargs)
    reference = (REFERENCE_DIR / vector["file"]).read_bytes()
    if vector["byte_reproducible"]:
        assert data == reference
    else:  # the reference writes multi-entry maps in random order: compare decoded
        ours, theirs = wire.decode(data), wire.decode(reference)
        assert ours.metadata.extra == theirs.metadata.extra
        assert bytes(ours.payload) == bytes(theirs.payload)
