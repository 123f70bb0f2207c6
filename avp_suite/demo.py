"""``avp-suite demo``: the same N-agent pipeline in every installed framework, text and latent.

On the real built-in ``smollm2-135m`` by default: a shared ~500-token document, a role per
agent, greedy answers that end at the model's end of turn. Prints the final answer of the
text run and of the latent run side by side, one table of prefilled tokens and times, and
writes ``results.json`` and a PNG chart to ``--out``. On a random-weight built-in
(``--model bench-qwen2``) the document is ~1,000 tokens and answers a fixed 64 tokens.
Frameworks that are not installed are skipped with the command that adds them; with none
installed, it runs the chain on the bare connector.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bench.common import machine, write_json
from .bench.frameworks import FRAMEWORKS, load, print_rows, run_framework
from .bench.workload import ChainWorkload

RUNS = 2
"""Interleaved runs per mode after one warm-up each; figures are medians."""

ANSWER_WIDTH = 96


def run_demo(args: argparse.Namespace) -> int:
    from avp_core import models
    from avp_core.connectors.hf import HuggingFaceConnector

    models.check_name_or_path(args.model)  # before anything slow is imported or loaded
    names = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = sorted(set(names) - set(FRAMEWORKS))
    if unknown:
        print(f"unknown frameworks {unknown}; choose from {', '.join(FRAMEWORKS)}", file=sys.stderr)
        return 2
    modules = {name: module for name in names if (module := load(name)) is not None}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"loading {args.model} ...", flush=True)
    connector = HuggingFaceConnector.from_pretrained(args.model)
    if not modules:
        from .bench import chain

        print(
            "no framework installed: running the chain on the bare connector "
            "(python -m pip install -c constraints.txt '.[all]' adds the frameworks)"
        )
        modules = {"connector": chain}
    if args.model in models.RANDOM_NAMES:  # random weights never stop: fixed-length answers
        workload = ChainWorkload.for_tokenizer(connector.tokenizer, agents=args.agents)
    else:
        workload = ChainWorkload.for_tokenizer(
            connector.tokenizer, agents=args.agents, doc_tokens=500, answer_tokens=48,
            ignore_eos=False,
        )  # fmt: skip
    steps = len(modules) * 2 * (RUNS + 1)
    rows: list[dict[str, Any]] = []
    with _progress(steps) as advance:
        for name, module in modules.items():
            rows += run_framework(name, module, connector, workload, RUNS, progress=advance)
    print()
    length = "up to " if not workload.ignore_eos else ""
    print(
        f"{args.agents} agents on {args.model}: shared {len(workload.document)}-char document, "
        f"{length}{workload.answer_tokens}-token greedy answers; medians of {RUNS} interleaved "
        f"runs after a warm-up; {machine_line()}"
    )
    print_answers(rows)
    print_rows(rows)
    results = {
        "benchmark": "demo",
        "rows": rows,
        "model": args.model,
        "agents": args.agents,
        "runs": RUNS,
        "identity": connector.identity.to_dict(),
        "machine": machine(),
    }
    write_json(out / "results.json", results)  # and results.png
    return 0


def machine_line() -> str:
    """Threads and load: what the times were measured under."""
    info = machine()
    load = info.get("load_avg")
    return (
        f"{info.get('torch_threads', '?')} torch threads, load average {load[0] if load else '?'}"
    )


def print_answers(rows: list[dict[str, Any]]) -> None:
    """The last agent's answer of the text run and of the latent run, per framework."""
    by = {(r["framework"], r["mode"]): r for r in rows}
    for framework in dict.fromkeys(r["framework"] for r in rows):
        text, latent = by[(framework, "text")], by[(framework, "latent")]
        same = "same answer" if text["answer"] == latent["answer"] else "answers differ"
        print(f"{framework}: {same} (latent path: {latent.get('latent_path') or 'latent'})")
        for mode, row in (("text", text), ("latent", latent)):
            answer = " ".join(row["answer"].split())
            if len(answer) > ANSWER_WIDTH:
                answer = answer[: ANSWER_WIDTH - 3] + "..."
            print(f"  {mode:>6}: {answer}")
    print()


class _progress:
    """A tqdm bar when tqdm is installed, else a plain counter line."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.bar: Any = None

    def __enter__(self) -> Callable[[], None]:
        try:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="runs", unit="run")
        except ImportError:
            self.bar = None
        return self.advance

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        else:
            print(f"  run {self.done}/{self.total}", flush=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
