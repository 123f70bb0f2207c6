"""KVCOMM's setting: fully connected agents with their own prefixes over one shared input.

Five agents (``--agents``) each have their own ~512-token prefix (role prompt); a ~1K-token
input goes to all of them; agent k reads its prefix, the input and the outputs of agents
1..k-1. As in a served system, every agent's prefix was computed in an earlier round and is
in the store (``--warmup`` earlier rounds on other inputs, which also fill the anchor pool).
For agents 2..N the time to first token is measured for:

- ``dense``: the whole prompt prefilled (text);
- ``exact``: exact prefix reuse from the store (the agent's own prefix, nothing after it);
- ``segments-rR``: exact prefix, then the input and the earlier outputs reused from the
  contexts that computed them (approximate; R = recompute ratio); ``segments-r0+anchors`` is
  KVCOMM's own scheme: no recompute, offsets corrected from the anchor pool.

Figures are medians of ``--runs`` interleaved repetitions of each agent's first-token call.
KVCOMM (arXiv 2510.12872) reports 7.8x lower TTFT at five agents on an H100.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from avp_core._args import non_negative_int, positive_int, ratio_list

from .common import machine, table, write_json
from .workload import make_document


def prefixes(tokenizer: Any, agents: int, tokens: int) -> list[str]:
    """``agents`` distinct role prompts of about ``tokens`` tokens each (corpus slices)."""
    text, _ = make_document(tokenizer, tokens * (agents + 4))  # whole slices for all
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [
        f"You are agent {i + 1}. Your brief:\n"
        + tokenizer.decode(ids[(i + 2) * tokens : (i + 3) * tokens - 12])
        for i in range(agents)
    ]


def inputs(tokenizer: Any, tokens: int, count: int) -> list[str]:
    """``count`` different shared inputs of about ``tokens`` tokens (other corpus windows)."""
    words = make_document(tokenizer, tokens * (count + 1))[0].split()
    size = len(words) // (count + 1)
    return [" ".join(words[i * size : (i + 1) * size]) for i in range(count)]


def prompt(prefix: str, shared: str, outputs: list[str]) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": prefix}, {"role": "user", "content": shared}]
    for index, text in enumerate(outputs):
        turns += [{"role": "user", "content": f"Agent {index + 1} said:"}]
        turns += [{"role": "assistant", "content": text}]
    return turns


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avp-suite bench kvcomm", description=__doc__)
    parser.add_argument("--model", default="bench-qwen2")
    parser.add_argument("--agents", type=positive_int, default=5)
    parser.add_argument("--input-tokens", type=positive_int, default=1024)
    parser.add_argument("--prefix-tokens", type=positive_int, default=512)
    parser.add_argument("--output-tokens", type=positive_int, default=128)
    parser.add_argument(
        "--recompute", type=ratio_list, default="0.15,0.3", help="ratios of the segment rows"
    )
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="earlier rounds")
    parser.add_argument("--runs", type=positive_int, default=3)
    parser.add_argument("--out", help="write results JSON (and a PNG chart beside it)")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    from avp_core.connectors.hf import HuggingFaceConnector
    from avp_core.reuse import SegmentReuse
    from avp_core.store import ContextStore, reusable_prefix

    connector = HuggingFaceConnector.from_pretrained(args.model)
    tokenizer = connector.tokenizer
    roles = prefixes(tokenizer, args.agents, args.prefix_tokens)
    *earlier_inputs, shared = inputs(tokenizer, args.input_tokens, args.warmup + 1)
    options = {"max_new_tokens": args.output_tokens, "ignore_eos": True}
    settings = {
        "segments-r0": SegmentReuse(recompute=0.0),
        "segments-r0+anchors": SegmentReuse(recompute=0.0, anchors=True),
        **{f"segments-r{r:g}": SegmentReuse(recompute=r) for r in args.recompute if r},
    }
    store = ContextStore(max_bytes=4 << 30)

    def round_of(text: str, anchored: bool) -> tuple[list[list[dict[str, str]]], list[Any]]:
        """One round on input ``text``: every agent answers. An earlier round's contexts go
        to the store (so the prefixes are there); the measured round's do not."""
        outputs: list[str] = []
        contexts: list[Any] = []
        prompts = []
        for role in roles:
            turns = prompt(role, text, outputs)
            reuse = SegmentReuse(anchors=True) if anchored else None
            result = connector.generate(turns, sources=contexts, segment_reuse=reuse, **options)
            if anchored:
                store.put(result.context)
            outputs.append(result.text)
            contexts.append(result.context)
            prompts.append(turns)
        return prompts, contexts

    for index, text in enumerate(earlier_inputs):  # earlier rounds: prefixes, anchors
        print(f"earlier round {index + 1} ...", file=sys.stderr, flush=True)
        round_of(text, anchored=True)
    print(f"the measured round ({args.agents} agents) ...", file=sys.stderr, flush=True)
    prompts, contexts = round_of(shared, anchored=False)

    def first_token(mode: str, agent: int) -> Any:
        turns = prompts[agent]
        if mode == "dense":
            return connector.generate(turns, max_new_tokens=1)
        context, _ = reusable_prefix(store, connector, connector.prompt_ids(turns))
        if mode == "exact":
            return connector.generate(turns, context=context, max_new_tokens=1)
        return connector.generate(
            turns,
            context=context,
            sources=contexts[:agent],
            segment_reuse=settings[mode],
            max_new_tokens=1,
        )

    modes = ["dense", "exact", *settings]
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for agent in range(1, args.agents):
        print(f"timing agent {agent + 1} ...", file=sys.stderr, flush=True)
        samples: dict[str, list[float]] = {mode: [] for mode in modes}
        usage: dict[str, Any] = {}
        for run in range(args.runs + 1):
            order = modes if run % 2 == 0 else modes[::-1]
            for mode in order:
                result = first_token(mode, agent)
                if run:  # the first repetition warms up
                    samples[mode].append(result.usage.ttft_s)
                usage[mode] = result.usage
        for mode in modes:
            u = usage[mode]
            results[mode].append(
                {
                    "agent": agent + 1,
                    "ttft_s": statistics.median(samples[mode]),
                    "prompt_tokens": u.prompt_tokens,
                    "prefilled_tokens": u.prefilled_tokens,
                    "reused": u.reused_tokens + u.approx_reused_tokens,
                }
            )
    _print(args, results)
    payload = {
        "benchmark": "kvcomm",
        "args": vars(args),
        "results": results,
        "machine": machine(),
    }
    write_json(args.out, payload)
    return payload


def _print(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> None:
    print(
        f"model {args.model}; {args.agents} agents, own prefixes ~{args.prefix_tokens} tokens, "
        f"shared input ~{args.input_tokens}, outputs {args.output_tokens}; time to first token, "
        f"median of {args.runs} interleaved runs"
    )
    dense = results["dense"]
    rows = []
    for mode, per_agent in results.items():
        for row, base in zip(per_agent, dense):
            rows.append(
                [
                    f"agent {row['agent']}",
                    mode,
                    row["prompt_tokens"],
                    row["prefilled_tokens"],
                    f"{100 * row['reused'] / row['prompt_tokens']:.0f}%",
                    row["ttft_s"] * 1e3,
                    base["ttft_s"] / row["ttft_s"],
                ]
            )
    print(
        table(["agent", "mode", "prompt", "prefilled", "reuse rate", "TTFT ms", "x vs dense"], rows)
    )


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
