"""KVCOMM's setting: time to first token of the fifth agent, latent reuse vs dense prefill.

Five agents share a 1K-token input; each has its own 512-token prefix (role prompt) and writes
512 tokens. Agent 5's dense prefill reads its prefix, the input and the four earlier outputs
(~3.5K tokens); on the latent path it continues agent 4's context (handoff layout, exact
reuse of everything computed before) and prefills only its prefix. KVCOMM (approximate KV
reuse across differing prefixes) reports 7.8x at 5 agents on an H100; this is our ratio on
this machine, with exact reuse.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from .._args import positive_int
from .common import machine, table, write_json
from .workload import make_document


def prefixes(tokenizer: Any, agents: int, tokens: int) -> list[str]:
    """``agents`` distinct role prompts of about ``tokens`` tokens each (corpus slices)."""
    text, _ = make_document(tokenizer, tokens * (agents + 2))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [
        f"You are agent {i + 1}. Your brief:\n"
        + tokenizer.decode(ids[(i + 2) * tokens : (i + 3) * tokens - 12])
        for i in range(agents)
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avp-suite bench kvcomm", description=__doc__)
    parser.add_argument("--model", default="bench-qwen2")
    parser.add_argument("--agents", type=positive_int, default=5)
    parser.add_argument("--input-tokens", type=positive_int, default=1024)
    parser.add_argument("--prefix-tokens", type=positive_int, default=512)
    parser.add_argument("--output-tokens", type=positive_int, default=512)
    parser.add_argument("--runs", type=positive_int, default=5)
    parser.add_argument("--out", help="write results JSON here")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)

    from ..connectors.hf import HuggingFaceConnector

    connector = HuggingFaceConnector.from_pretrained(args.model)
    tokenizer = connector.tokenizer
    shared_input, input_tokens = make_document(tokenizer, args.input_tokens)
    roles = prefixes(tokenizer, args.agents, args.prefix_tokens)
    options = {"max_new_tokens": args.output_tokens, "ignore_eos": True}

    print(
        f"building the first {args.agents - 1} agents' outputs "
        f"({args.output_tokens} tokens each) ...",
        file=sys.stderr,
        flush=True,
    )
    context: Any = None
    outputs: list[str] = []
    for index, role in enumerate(roles[:-1]):
        turn = [{"role": "system", "content": role}]
        if context is None:
            turn.append({"role": "user", "content": shared_input})
        result = connector.generate(
            turn, context=context, layout="handoff" if context else "shared", **options
        )
        context, outputs = result.context, [*outputs, result.text]
        print(f"  agent {index + 1} done", file=sys.stderr, flush=True)
    assert context is not None

    earlier = "\n\n".join(f"Agent {i + 1}: {text}" for i, text in enumerate(outputs))
    dense_messages = [
        {"role": "system", "content": roles[-1]},
        {"role": "user", "content": f"{shared_input}\n\n{earlier}"},
    ]
    latent_turn = [{"role": "system", "content": roles[-1]}]

    def dense() -> Any:
        return connector.generate(dense_messages, max_new_tokens=1)

    def latent() -> Any:
        return connector.generate(latent_turn, context=context, layout="handoff", max_new_tokens=1)

    dense_usage, latent_usage = dense().usage, latent().usage
    samples: dict[str, list[float]] = {"dense": [], "latent": []}
    for run in range(args.runs):
        for name, fn in (
            (("dense", dense), ("latent", latent))
            if run % 2 == 0
            else (("latent", latent), ("dense", dense))
        ):
            samples[name].append(fn().usage.ttft_s)
    ttft = {name: statistics.median(values) for name, values in samples.items()}
    ratio = ttft["dense"] / ttft["latent"]
    print(
        f"model {args.model}; shared input {input_tokens} tokens, prefixes ~{args.prefix_tokens}, "
        f"outputs {args.output_tokens}; agent {args.agents}'s time to first token, median of "
        f"{args.runs} interleaved runs"
    )
    print(
        table(
            ["agent 5", "prefilled tokens", "reused tokens", "TTFT ms"],
            [
                ["dense prefill (text)", dense_usage.prefilled_tokens, 0, ttft["dense"] * 1e3],
                [
                    "latent (exact reuse)",
                    latent_usage.prefilled_tokens,
                    latent_usage.reused_tokens,
                    ttft["latent"] * 1e3,
                ],
            ],
        )
    )
    print(
        f"TTFT ratio dense/latent: {ratio:.1f}x (KVCOMM reports 7.8x on an H100, approximate "
        "reuse; ours is exact, on this CPU)"
    )
    payload = {
        "benchmark": "kvcomm",
        "args": vars(args),
        "ttft_s": ttft,
        "ratio": ratio,
        "dense_prefilled": dense_usage.prefilled_tokens,
        "latent_prefilled": latent_usage.prefilled_tokens,
        "latent_reused": latent_usage.reused_tokens,
        "machine": machine(),
    }
    write_json(args.out, payload)
    return payload


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
