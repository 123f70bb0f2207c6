"""``avp-suite demo``: the same N-agent pipeline in every installed framework, text and latent.

On the built-in ``bench-qwen2`` by default: a shared ~1,000-token document, a role per agent,
64-token greedy answers. Prints one table, writes ``results.json`` and a PNG chart to
``--out``. Frameworks that are not installed are skipped with the command that adds them;
with none installed, it runs the chain on the bare connector.
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

RUNS = 3
"""Interleaved runs per mode after one warm-up each; figures are medians."""


def run_demo(args: argparse.Namespace) -> int:
    from .connectors.hf import HuggingFaceConnector

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
    workload = ChainWorkload.for_tokenizer(connector.tokenizer, agents=args.agents)
    steps = len(modules) * 2 * RUNS
    rows: list[dict[str, Any]] = []
    with _progress(steps) as advance:
        for name, module in modules.items():
            rows += run_framework(name, module, connector, workload, RUNS, progress=advance)
    print()
    print(
        f"{args.agents} agents on {args.model}: shared {len(workload.document)}-char document, "
        f"{workload.answer_tokens}-token greedy answers; medians of {RUNS} interleaved runs"
    )
    print_rows(rows)
    results = {
        "benchmark": "demo",
        "rows": rows,
        "model": args.model,
        "agents": args.agents,
        "identity": connector.identity.to_dict(),
        "machine": machine(),
    }
    write_json(out / "results.json", results)  # and results.png
    return 0


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
