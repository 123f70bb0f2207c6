"""``avp-suite demo``: what a new user runs first.

Until the framework demo lands, it checks the codec and the handshake, then runs a two-agent
handoff on a built-in model, text path and latent path side by side (the handoff benchmark
with a short run), and writes ``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run_demo(args: argparse.Namespace) -> int:
    from .cli import self_check

    print("avp-suite demo: self-check (no model needed)")
    for line in self_check():
        print(f"  ok  {line}")
    try:
        from .bench import handoff
    except ImportError as exc:
        print(
            f"\nThe model part needs torch and transformers ({exc.name} is missing):\n"
            "  python -m pip install -c constraints.txt '.[hf]'",
            file=sys.stderr,
        )
        return 0
    out = Path(args.out)
    print(f"\nTwo agents on {args.model}: text path vs latent handoff (one shared run each)")
    handoff.main(["--model", args.model, "--runs", "3", "--out", str(out / "results.json")])
    return 0
