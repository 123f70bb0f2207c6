"""Identity benchmark: time to fingerprint a model of realistic size (default ~500M params).

Builds a Qwen2 model with the shape of a 0.5B checkpoint (uninitialised weights: hashing
time does not depend on the values) and times ``extract_model_identity``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from avp_core._args import positive_int

from .common import machine, write_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avp-suite bench identity", description=__doc__)
    parser.add_argument("--hidden", type=positive_int, default=896)
    parser.add_argument("--layers", type=positive_int, default=24)
    parser.add_argument("--intermediate", type=positive_int, default=4864)
    parser.add_argument("--vocab", type=positive_int, default=151936)
    parser.add_argument("--out", help="write results JSON here")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from avp_core.connectors.hf_identity import extract_model_identity, weights_fingerprint
    from avp_core.models import build, quiet_progress

    config = Qwen2Config(
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=args.intermediate,
        vocab_size=args.vocab,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    model = model.to_empty(device="cpu")
    params = sum(p.numel() for p in model.parameters())
    from transformers import AutoTokenizer

    with quiet_progress():
        tokenizer = AutoTokenizer.from_pretrained(build("tiny-qwen2"))
    start = time.perf_counter()
    weights_fingerprint(model)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    identity = extract_model_identity(model, tokenizer)
    warm = time.perf_counter() - start
    print(f"Qwen2 shape: {params / 1e6:.0f}M parameters, {len(model.state_dict())} tensors")
    print(
        f"extract_model_identity: first {cold * 1e3:.0f} ms (weights only), "
        f"then {warm * 1e3:.0f} ms (weights + tokenizer + template)"
    )
    print(f"identity: {identity.short()}")
    payload = {
        "benchmark": "identity",
        "params": params,
        "first_s": cold,
        "warm_s": warm,
        "machine": machine(),
    }
    write_json(args.out, payload)
    return payload


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
