"""Framework benchmark: the N-agent chain through LangGraph, CrewAI and AutoGen, text vs latent.

Each installed framework runs the same workload (avp_suite.bench.workload) on one model in one
process: a warm-up of each mode, then interleaved runs; figures are medians. A framework that
is not installed is skipped with the command that adds it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from importlib import import_module
from typing import Any

from avp_core._args import positive_int, positive_ints

from .common import save_rows, table
from .workload import ChainRun, ChainWorkload, measure

FRAMEWORKS = {
    "langgraph": "avp_suite.chains.langgraph",
    "crewai": "avp_suite.chains.crewai",
    "autogen": "avp_suite.chains.autogen",
}


def load(framework: str) -> Any | None:
    """The framework's chain module, or None (with one line saying how to add it)."""
    try:
        return import_module(FRAMEWORKS[framework])
    except ImportError as exc:
        print(
            f"skipped {framework}: {exc.name or exc} is not installed "
            f"(python -m pip install -c constraints.txt '.[{framework}]')"
        )
        return None


def _median_run(runs: list[ChainRun]) -> dict[str, Any]:
    row = runs[0].row()
    for key in (
        "prompt_tokens",
        "prefilled_tokens",
        "reused_tokens",
        "wall_s",
        "kv_bytes",
        "reused_pct",
    ):
        row[key] = statistics.median(r.row()[key] for r in runs)
    hops = len(runs[0].ttft_s)
    row["ttft_s"] = [
        statistics.median(r.ttft_s[i] for r in runs if len(r.ttft_s) > i) for i in range(hops)
    ]
    row["deterministic"] = all(r.outputs == runs[0].outputs for r in runs)
    row["answer"] = runs[0].outputs[-1] if runs[0].outputs else ""
    return row


def run_framework(
    framework: str,
    module: Any,
    connector: Any,
    workload: ChainWorkload,
    runs: int,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """Warm-up, then ``runs`` interleaved text/latent runs; one median row per mode.

    ``progress()`` is called after every run, warm-ups included.
    """
    samples: dict[bool, list[ChainRun]] = {False: [], True: []}
    for latent in (False, True):
        measure(framework, module, connector, workload, latent=latent)
        if progress is not None:
            progress()
    for index in range(runs):
        order = (False, True) if index % 2 == 0 else (True, False)
        for latent in order:
            samples[latent].append(measure(framework, module, connector, workload, latent=latent))
            if progress is not None:
                progress()
    rows = [_median_run(samples[False]), _median_run(samples[True])]
    rows[1]["latent_path"] = getattr(module, "LATENT_PATH", "")
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    lines = []
    by_key = {(r["framework"], r["agents"], r["mode"]): r for r in rows}
    for row in rows:
        text = by_key.get((row["framework"], row["agents"], "text"), row)
        lines.append(
            [
                row["framework"],
                row["agents"],
                row["mode"],
                row["prefilled_tokens"],
                f"{row['reused_pct']:.0f}%",
                " ".join(f"{t * 1e3:.0f}" for t in row["ttft_s"]),
                row["wall_s"],
                text["prefilled_tokens"] / max(row["prefilled_tokens"], 1),
                text["wall_s"] / row["wall_s"],
                f"{row['kv_bytes'] / 1e6:.1f}",
            ]
        )
    print(
        table(
            [
                "framework",
                "agents",
                "mode",
                "prefilled",
                "reused",
                "TTFT per hop ms",
                "wall s",
                "x fewer prefill",
                "x faster",
                "KV reused MB",
            ],
            lines,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avp-suite bench frameworks", description=__doc__)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument(
        "--agents", type=positive_ints, default="2,4,8", help="chain lengths, comma-separated"
    )
    parser.add_argument("--model", default="bench-qwen2")
    parser.add_argument("--doc-tokens", type=positive_int, default=1000)
    parser.add_argument("--answer-tokens", type=positive_int, default=64)
    parser.add_argument("--runs", type=positive_int, default=3)
    parser.add_argument("--out", help="write results JSON here")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)

    from avp_core.connectors.hf import HuggingFaceConnector

    connector = HuggingFaceConnector.from_pretrained(args.model)
    rows: list[dict[str, Any]] = []
    for framework in [f.strip() for f in args.frameworks.split(",") if f.strip()]:
        module = load(framework)
        if module is None:
            continue
        for agents in args.agents:
            workload = ChainWorkload.for_tokenizer(
                connector.tokenizer,
                agents=agents,
                doc_tokens=args.doc_tokens,
                answer_tokens=args.answer_tokens,
            )
            print(f"{framework}: {agents} agents ...", file=sys.stderr, flush=True)
            rows += run_framework(framework, module, connector, workload, args.runs)
    if rows:
        print_rows(rows)
    return save_rows("frameworks", args, rows)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
