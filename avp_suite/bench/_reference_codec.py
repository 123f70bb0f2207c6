"""Times the reference avp 0.6.2 codec round trip; run with the reference venv's python.

Usage: python _reference_codec.py LAYERS HEADS DIM TOKENS DTYPE RUNS  -> one JSON line.
Standalone on purpose: it imports only the reference package and torch.
"""

import json
import statistics
import sys
import time

import torch
from avp import codec
from avp.kv_cache import deserialize_kv_cache, serialize_kv_cache
from avp.types import AVPMetadata


def timed(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    layers, heads, dim, tokens = (int(x) for x in sys.argv[1:5])
    dtype, runs = getattr(torch, sys.argv[5]), int(sys.argv[6])
    gen = torch.Generator().manual_seed(0)
    shape = (1, heads, tokens, dim)
    kv = tuple(
        (torch.randn(shape, generator=gen).to(dtype), torch.randn(shape, generator=gen).to(dtype))
        for _ in range(layers)
    )

    def encode():
        payload, _ = serialize_kv_cache(kv)
        return codec.encode_kv_cache(payload, AVPMetadata(model_id="bench"))

    data = encode()

    def decode():
        message = codec.decode(data)
        return deserialize_kv_cache(message.payload)

    print(json.dumps({"encode_s": timed(encode, runs), "decode_s": timed(decode, runs)}))


if __name__ == "__main__":
    main()
