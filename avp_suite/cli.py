"""The ``avp-suite`` command: ``demo``, ``bench`` and ``inspect``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avp_core._args import positive_int
from avp_core.errors import AVPError, InvalidRequestError

BENCHMARKS: dict[str, str] = {
    "codec": "avp_suite.bench.codec",
    "handoff": "avp_suite.bench.handoff",
    "identity": "avp_suite.bench.identity",
    "frameworks": "avp_suite.bench.frameworks",
    "chain": "avp_suite.bench.chain",
    "kvcomm": "avp_suite.bench.kvcomm",
    "fidelity": "avp_suite.bench.fidelity",
    "patterns": "avp_suite.bench.patterns",
    "tools": "avp_suite.bench.tools",
    "store": "avp_suite.bench.store",
}


REFERENCE_BENCHMARKS = ("codec", "handoff")
"""Benchmarks that also run the reference avp 0.6.2 when given its venv's python."""


def inspect_message(path: str, *, max_bytes: int | None = None) -> str:
    """A human-readable description of an AVP message file: header, metadata, tensors."""
    from avp_core import wire
    from avp_core.wire.signing import KEY_ENV, default_key

    data = Path(path).read_bytes()
    message = wire.decode(data, max_bytes=max_bytes or wire.DEFAULT_MAX_BYTES, key=default_key())
    header, meta = message.header, message.metadata
    flags = [
        name
        for name, on in (
            ("compressed", header.compressed),
            ("map", header.has_map),
            ("kv-cache", header.kv_cache),
        )
        if on
    ]
    lines = [
        f"file: {path} ({len(data):,} bytes)",
        f"header: AVP v{header.version}, flags {header.flags:#04x} [{', '.join(flags) or '-'}], "
        f"payload {header.payload_length:,} bytes, metadata {header.metadata_length:,} bytes",
        "metadata:",
    ]
    for name in (
        "session_id",
        "source_agent_id",
        "target_agent_id",
        "model_id",
        "hidden_dim",
        "num_layers",
        "avp_map_id",
        "latent_steps",
        "created_at",
    ):
        value = getattr(meta, name)
        if value:
            lines.append(f"  {name}: {value}")
    lines.append(
        f"  payload_type: {meta.payload_type.name}, dtype: {meta.dtype.name}, "
        f"mode: {meta.mode.name}, compression: {meta.compression or 'none'}"
    )
    if meta.payload_checksum is not None:
        lines.append(f"  payload_checksum: {meta.payload_checksum:#010x} (verified)")
    if message.signed:
        checked = f"checked with ${KEY_ENV}" if message.authenticated else "not checked"
        hint = "" if message.authenticated else f" (set {KEY_ENV} to check it)"
        lines.append(f"  signature: HMAC-SHA256, {checked}{hint}")
    if meta.extra:
        lines.append(f"  extra: {dict(meta.extra)}")
    if meta.token_ids:
        shown = ", ".join(map(str, meta.token_ids[:8]))
        lines.append(
            f"  token_ids: {len(meta.token_ids)} "
            f"[{shown}{', ...' if len(meta.token_ids) > 8 else ''}]"
        )
    if meta.identity:
        lines.append(f"  identity: {meta.identity.short()}")
    if meta.text is not None:
        text = meta.text if len(meta.text) <= 60 else meta.text[:57] + "..."
        lines.append(f"  text: {text!r}")
    lines.append(f"tensors ({len(message.payload):,} bytes uncompressed):")
    lines.extend("  " + line for line in _tensor_summary(message))
    return "\n".join(lines)


def _tensor_summary(message: Any) -> list[str]:
    try:
        import torch
    except ImportError:
        return ["(install torch to summarise tensor values)"]
    if message.is_kv_cache:
        pairs = message.kv_cache()
        shapes = sorted({(tuple(k.shape), tuple(v.shape)) for k, v in pairs})
        described = "; ".join(f"K {list(k)} V {list(v)}" for k, v in shapes)
        values = torch.cat([t.reshape(-1).float() for pair in pairs for t in pair])
        head = f"{len(pairs)} layers: {described}"
    else:
        tensor = message.hidden_state()
        values = tensor.reshape(-1).float()
        head = f"hidden state {list(tensor.shape)}"
    if values.numel() == 0:
        return [head, "empty"]
    stats = (
        f"min {values.min().item():.4g}, max {values.max().item():.4g}, "
        f"mean {values.mean().item():.4g}, "
        f"std {values.std().item() if values.numel() > 1 else 0.0:.4g}"
    )
    return [head, stats]


def self_check() -> list[str]:
    """Encode, decode and handshake checks that need no model; returns what was checked."""
    import torch

    from avp_core import wire
    from avp_core.handshake import Mode, resolve
    from avp_core.identity import ModelIdentity

    checked = []
    kv = [(torch.randn(1, 2, 16, 8), torch.randn(1, 2, 16, 8)) for _ in range(4)]
    for level in (None, 3):
        data = wire.encode_kv_cache(kv, compression=level, token_ids=list(range(16)))
        decoded = wire.decode(data).kv_cache()
        assert all(torch.equal(a, b) for p, q in zip(kv, decoded) for a, b in zip(p, q))
        checked.append(
            f"codec round trip ({'zstd' if level else 'raw'}): {len(data):,} bytes, exact"
        )
    base = ModelIdentity("qwen2", 4, 64, 2, 8, 4096, "w1", "t1", "c1")
    cases = [
        (base, Mode.LATENT),
        (ModelIdentity("qwen2", 4, 64, 2, 8, 4096, "w2", "t1", "c1"), Mode.HYBRID),
        (ModelIdentity("gpt2", 2, 64, 4, 16, 3000, "w3", "t3", "c3"), Mode.JSON),
    ]
    for remote, expected in cases:
        handshake = resolve(base, remote)
        assert handshake.mode is expected, handshake
        checked.append(f"handshake -> {handshake.mode.name}: {handshake.reason}")
    return checked


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from importlib import import_module

    if args.name == "all" and args.options:
        raise InvalidRequestError(
            f"options {' '.join(args.options)!r} go to one benchmark at a time: "
            "avp-suite bench NAME [options]; 'all' takes only --out and --reference-python"
        )
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        print(f"== bench {name} ==", flush=True)
        module = import_module(BENCHMARKS[name])
        extra = list(args.options)
        if args.out:
            extra += ["--out", str(Path(args.out) / f"{name}.json")]
        if args.reference_python and name in REFERENCE_BENCHMARKS:
            extra += ["--reference-python", args.reference_python]
        module.main(extra)
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    print(inspect_message(args.file, max_bytes=args.max_bytes))
    return 0


def _summary(module: str) -> str:
    """The first line of a benchmark module's docstring, without importing it."""
    import ast
    from importlib.util import find_spec

    spec = find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""
    return doc.split("\n", 1)[0].rstrip(".")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avp-suite",
        description="Agent Vector Protocol for LangGraph, CrewAI and AutoGen.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="run the text vs latent demo on a built-in model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument(
        "--model",
        default="smollm2-135m",
        help="built-in model name or a checkpoint path (default: the real smollm2-135m; "
        "bench-qwen2 for speed at a larger random-weight shape)",
    )
    demo.add_argument(
        "--frameworks",
        default="langgraph,crewai,autogen",
        help="comma-separated; frameworks not installed are skipped",
    )
    demo.add_argument("--agents", type=positive_int, default=4, help="agents in the chain")
    demo.add_argument("--out", default="avp-demo", help="directory for results.json and the chart")
    demo.set_defaults(func=_cmd_demo)
    bench = sub.add_parser(
        "bench",
        help="run a benchmark (text vs latent side by side)",
        description="Benchmarks (each prints text and latent side by side):\n"
        + "\n".join(f"  {name:<10} {_summary(module)}" for name, module in BENCHMARKS.items())
        + "\n  all        every benchmark above, in turn",
        epilog="Other options go to the benchmark: python -m avp_suite.bench.NAME --help.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("name", choices=[*BENCHMARKS, "all"])
    bench.add_argument("--out", help="directory for JSON results and charts")
    bench.add_argument("--reference-python", help="python of a venv with the reference avp 0.6.2")
    bench.set_defaults(func=_cmd_bench)
    inspect = sub.add_parser(
        "inspect",
        help="describe an AVP message file",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    inspect.add_argument("file")
    inspect.add_argument(
        "--max-bytes", type=positive_int, default=None, help="refuse larger messages"
    )
    inspect.set_defaults(func=_cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, options = parser.parse_known_args(argv)
    if options and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(options)}")
    args.options = options
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except AVPError as exc:
        print(f"avp-suite {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that is missing, a directory, unreadable
        where = f": {exc.filename}" if exc.filename is not None else ""
        print(f"avp-suite {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
