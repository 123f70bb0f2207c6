"""Chain-length sweep on the connector alone (no framework): prefill and wall time vs agents.

The text chain gives each agent a fresh prompt (its role, the document, the answers so far);
the latent chain continues the previous agent's context (handoff layout), so each agent
prefills only its own turn. Text grows about quadratically with the number of agents, latent
about linearly. ``--think-steps`` adds a third, *approximate* chain in which agents 1..N-1
think in latent steps instead of writing text (LatentMAS-style), reported separately.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from avp_core._args import non_negative_int, positive_int, positive_ints

from .common import save_rows, table
from .workload import ChainRun, ChainWorkload, measure

LATENT_PATH = "handoff: each agent continues the last context (other prompts than text)"
"""How the latent run reuses KV (the demo prints it beside the answers)."""


class _ConnectorChain:
    """``run_chain`` for the bare connector, with an optional latent-thinking variant."""

    def __init__(self, think_steps: int = 0) -> None:
        self.think_steps = think_steps

    def run_chain(self, connector: Any, workload: ChainWorkload, *, latent: bool) -> list[str]:
        options = {"max_new_tokens": workload.answer_tokens, "ignore_eos": workload.ignore_eos}
        outputs: list[str] = []
        context = None
        for index in range(workload.agents):
            name, instruction = workload.role(index)
            last = index == workload.agents - 1
            if not latent:
                earlier = "\n\n".join(f"{workload.role(i)[0]}: {t}" for i, t in enumerate(outputs))
                content = workload.task + (f"\n\nAnswers so far:\n{earlier}" if earlier else "")
                messages = [
                    {"role": "system", "content": instruction},
                    {"role": "user", "content": content},
                ]
                outputs.append(connector.generate(messages, source_agent=name, **options).text)
                continue
            turn = [{"role": "system", "content": instruction}]
            if context is None:
                turn.append({"role": "user", "content": workload.task})
            layout = "shared" if context is None else "handoff"
            if self.think_steps and not last:
                context = connector.think(
                    turn, steps=self.think_steps, context=context, layout=layout, source_agent=name
                )
                outputs.append("")
                continue
            result = connector.generate(
                turn, context=context, layout=layout, source_agent=name, **options
            )
            context = result.context
            outputs.append(result.text)
        return outputs


def run_chain(connector: Any, workload: ChainWorkload, *, latent: bool) -> list[str]:
    """The exact connector chain (text or latent handoff); returns each agent's answer."""
    return _ConnectorChain().run_chain(connector, workload, latent=latent)


def sweep(
    connector: Any,
    agents: list[int],
    runs: int,
    doc_tokens: int,
    answer_tokens: int,
    think_steps: int,
) -> list[dict[str, Any]]:
    rows = []
    variants = [("text", _ConnectorChain(), False), ("latent", _ConnectorChain(), True)]
    if think_steps:
        variants.append((f"thinking-{think_steps} (approx.)", _ConnectorChain(think_steps), True))
    for n in agents:
        workload = ChainWorkload.for_tokenizer(
            connector.tokenizer, agents=n, doc_tokens=doc_tokens, answer_tokens=answer_tokens
        )
        samples: dict[str, list[ChainRun]] = {name: [] for name, _, _ in variants}
        for run in range(runs + 1):  # run 0 is the warm-up
            order = variants if run % 2 == 0 else variants[::-1]
            for name, chain, latent in order:
                result = measure("connector", chain, connector, workload, latent=latent)
                print(
                    f"  {n} agents, {'warm-up' if run == 0 else f'run {run}/{runs}'}, "
                    f"{name}: {result.wall_s:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
                if run:
                    samples[name].append(result)
        for name, _, _ in variants:
            row = samples[name][0].row()
            row["mode"] = name
            for key in ("prefilled_tokens", "reused_tokens", "prompt_tokens", "wall_s"):
                row[key] = statistics.median(r.row()[key] for r in samples[name])
            row["last_ttft_s"] = statistics.median(r.ttft_s[-1] for r in samples[name])
            rows.append(row)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avp-suite bench chain", description=__doc__)
    parser.add_argument("--model", default="bench-qwen2")
    parser.add_argument(
        "--agents", type=positive_ints, default="2,4,8,16", help="chain lengths, comma-separated"
    )
    parser.add_argument("--doc-tokens", type=positive_int, default=1000)
    parser.add_argument("--answer-tokens", type=positive_int, default=64)
    parser.add_argument("--runs", type=positive_int, default=2)
    parser.add_argument(
        "--think-steps",
        type=non_negative_int,
        default=20,
        help="latent steps per thinking agent (0: no thinking chain)",
    )
    parser.add_argument("--out", help="write results JSON (and a PNG chart beside it)")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)

    from avp_core.connectors.hf import HuggingFaceConnector

    connector = HuggingFaceConnector.from_pretrained(args.model)
    agents: list[int] = args.agents
    rows = sweep(
        connector, agents, args.runs, args.doc_tokens, args.answer_tokens, args.think_steps
    )
    text = {r["agents"]: r for r in rows if r["mode"] == "text"}
    print(f"model {args.model}; medians of {args.runs} interleaved runs after a warm-up")
    print(
        table(
            [
                "agents",
                "mode",
                "prefilled",
                "reused %",
                "last TTFT ms",
                "wall s",
                "x fewer prefill",
                "x faster",
            ],
            [
                [
                    r["agents"],
                    r["mode"],
                    r["prefilled_tokens"],
                    f"{r['reused_pct']:.0f}",
                    r["last_ttft_s"] * 1e3,
                    r["wall_s"],
                    text[r["agents"]]["prefilled_tokens"] / max(r["prefilled_tokens"], 1),
                    text[r["agents"]]["wall_s"] / r["wall_s"],
                ]
                for r in rows
            ],
        )
    )
    return save_rows("chain", args, rows)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
