"""Context store benchmark: a long LangGraph thread's storage per backend, throughput, resume.

1. A chatbot thread of ``--turns`` turns with a SQLite checkpointer, on every backend: bytes
   the checkpoints and the store hold, against the same thread stored as text (a text-mode
   model, no contexts) plus the final context alone; and once more on a memory store bounded
   just above the final context, to show that the bound holds and reuse goes on.
2. Save and load of a ``--kv-mb`` sized context per backend (encode, store, fetch, decode,
   each record's content hash checked), against the codec's round trip.
3. A thread resumed in a fresh process reuses as many tokens as the live one does.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from avp_core._args import positive_int

from .common import machine, median_time, table, write_json

BACKENDS = ("memory", "directory", "sqlite", "postgres", "redis")
POSTGRES = os.environ.get("AVP_SUITE_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("AVP_SUITE_REDIS", "redis://127.0.0.1:6379/0")


def fresh_backend(name: str, workdir: Path, tag: str, **options: Any) -> Any:
    """A fresh, empty backend of kind ``name`` (a private table or key prefix for servers)."""
    from avp_core.store import DirectoryBackend, MemoryBackend, SQLiteBackend

    if name == "memory":
        return MemoryBackend(**{"max_bytes": None, **options})
    if name == "directory":
        return DirectoryBackend(workdir / f"{tag}-dir", **options)
    if name == "sqlite":
        return SQLiteBackend(workdir / f"{tag}.db", **options)
    from avp_core.store.network import PostgresBackend, RedisBackend

    if name == "postgres":
        return PostgresBackend(POSTGRES, table=f"avp_bench_{tag}_{os.getpid()}", **options)
    return RedisBackend(REDIS, prefix=f"avp-bench:{tag}:{os.getpid()}:", **options)


def drop(backend: Any) -> None:
    """Delete what a benchmark wrote to a server (local ones live in the temp directory)."""
    backend.delete([entry.key for entry in backend.entries()])
    if hasattr(backend, "drop"):
        backend.drop()
    backend.close()


def chat_connector(turns: int) -> Any:
    """tiny-qwen2 with room for the whole thread (its random weights attend to any length)."""
    from avp_core import HuggingFaceConnector

    connector = HuggingFaceConnector.from_pretrained("tiny-qwen2")
    connector.model.config.max_position_embeddings = max(4096, 40 * turns)
    return connector


def thread(
    connector: Any, serde: Any, path: Path, turns: int, *, latent: bool = True
) -> dict[str, Any]:
    """Run a chatbot thread with a SQLite checkpointer; bytes and reuse it leaves behind."""
    from avp_langgraph import context_of
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.sqlite import SqliteSaver

    connection = sqlite3.connect(path, check_same_thread=False)
    app = chatbot_graph(connector, SqliteSaver(connection, serde=serde), latent=latent)
    config = {"configurable": {"thread_id": "bench"}}
    start = time.perf_counter()
    reused = prompt = 0
    for turn in range(turns):
        state = app.invoke({"messages": [HumanMessage(f"Fact {turn}?")]}, config)
        report = state["messages"][-1].response_metadata["avp"]
        reused += report["reused_tokens"]
        prompt += report["prompt_tokens"]
    elapsed = time.perf_counter() - start
    (checkpoints,) = connection.execute(
        "SELECT SUM(LENGTH(checkpoint) + LENGTH(metadata)) FROM checkpoints"
    ).fetchone()
    (writes,) = connection.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes").fetchone()
    connection.close()
    final = context_of(state["messages"][-1])
    return {
        "checkpoint_bytes": int(checkpoints + writes),
        "final_context_bytes": final.nbytes if final is not None else 0,
        "positions": final.seq_len if final is not None else 0,
        "reused_tokens": reused,
        "prompt_tokens": prompt,
        "seconds": elapsed,
    }


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def measure_threads(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from avp_langgraph import AVPSerializer
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from avp_core import ContextStore

    connector = chat_connector(args.turns)
    print(f"thread: {args.turns} turns on tiny-qwen2, SQLite checkpointer", flush=True)
    # the baseline: the same thread as text, no contexts anywhere (a text-mode model)
    text = thread(
        connector, JsonPlusSerializer(), workdir / "text.sqlite", args.turns, latent=False
    )
    print(f"  text (no contexts): {text['checkpoint_bytes']:,} checkpoint bytes", flush=True)
    runs: dict[str, Any] = {}
    plan: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in args.backends]
    plan.append(("memory, bounded", {}))
    for name, options in plan:
        kind = name.split(",")[0]
        if name == "memory, bounded":  # just above the final context: chains must restart
            final = max((run["final_context_bytes"] for run in runs.values()), default=0)
            options = {"max_bytes": int(1.02 * final) + 16384} if final else {}
            if not options:
                continue
        try:
            backend = fresh_backend(kind, workdir, f"thread{len(runs)}", **options)
        except Exception as exc:  # a server that is not running: report and go on
            print(f"  {name}: skipped ({exc})", flush=True)
            continue
        store = ContextStore(backend=backend, max_bytes=64 << 20)
        before = rss_mb()
        checkpoints = workdir / f"thread{len(runs)}.sqlite"
        result = thread(connector, AVPSerializer(store=store), checkpoints, args.turns)
        result.update(
            store_bytes=backend.nbytes(),
            limit=options.get("max_bytes"),
            rss_growth_mb=rss_mb() - before,
        )
        result["total_bytes"] = result["store_bytes"] + result["checkpoint_bytes"]
        result["ratio"] = result["total_bytes"] / (
            result["final_context_bytes"] + text["checkpoint_bytes"]
        )
        runs[name] = result
        print(
            f"  {name}: store {result['store_bytes']:,} + checkpoints "
            f"{result['checkpoint_bytes']:,} bytes = {result['ratio']:.2f}x (final context + "
            f"text); {result['seconds']:.0f} s",
            flush=True,
        )
        drop(backend)
        store.clear()
    return {"text": text, "runs": runs}


def measure_throughput(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from avp_core import AVPContext, ContextStore, wire

    from .codec import make_cache

    tokens = max(1, round(args.kv_mb * 1e6 / (28 * 4 * 128 * 2 * 2)))
    kv = make_cache(28, 4, 128, tokens, "bfloat16")
    context = AVPContext(sequence=tuple(range(tokens)), kv=tuple(kv), identity=None)
    size = context.nbytes
    print(f"save/load of a {size / 1e6:.1f} MB context (median of {args.runs})", flush=True)

    def codec_trip() -> None:
        wire.decode(wire.encode_kv_cache(kv), copy=True).kv_cache()

    results: dict[str, Any] = {
        "codec round trip": {"round_trip_s": median_time(codec_trip, runs=args.runs)}
    }
    for name in args.backends:
        try:
            backend = fresh_backend(name, workdir, "put")
        except Exception as exc:
            print(f"  {name}: skipped ({exc})", flush=True)
            continue
        saves, loads = [], []
        for _ in range(args.runs + 1):
            start = time.perf_counter()
            ref = ContextStore(backend=backend).save(context)  # a fresh store: nothing memoized
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            ContextStore(backend=backend).load(ref)
            loads.append(time.perf_counter() - start)
            backend.delete([ref.key])
        save_s, load_s = sorted(saves[1:])[args.runs // 2], sorted(loads[1:])[args.runs // 2]
        results[name] = {"save_s": save_s, "load_s": load_s, "round_trip_s": save_s + load_s}
        drop(backend)
    codec = results["codec round trip"]["round_trip_s"]
    rows = [
        [
            name,
            r.get("save_s", 0) * 1e3,
            r.get("load_s", 0) * 1e3,
            r["round_trip_s"] * 1e3,
            size / r["round_trip_s"] / 1e6,
            r["round_trip_s"] / codec,
        ]
        for name, r in results.items()
    ]
    print(table(["backend", "save ms", "load ms", "handoff ms", "MB/s", "x codec"], rows))
    return {"bytes": size, "results": results}


RESUME = """
import json, sqlite3, sys
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from avp_langgraph import AVPSerializer
from avp_suite.bench.store import chat_connector, chatbot_graph
path, thread, first, turns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
serde = AVPSerializer(store=f"sqlite:{path}.contexts")
app = chatbot_graph(chat_connector(64), SqliteSaver(sqlite3.connect(path, check_same_thread=False),
                                                   serde=serde))
config = {"configurable": {"thread_id": thread}}
for turn in range(first, first + turns):
    state = app.invoke({"messages": [HumanMessage(f"Fact {turn}?")]}, config)
print(json.dumps(state["messages"][-1].response_metadata["avp"]))
"""


def chatbot_graph(connector: Any, saver: Any, *, latent: bool = True) -> Any:
    """A one-node chatbot (the model answers the whole thread each turn), checkpointed."""
    from avp_langgraph import AVPChatModel
    from langgraph.graph import END, START, MessagesState, StateGraph

    chat = AVPChatModel(connector=connector, max_new_tokens=4, latent=latent)
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [chat.invoke(state["messages"])]})
    graph.add_edge(START, "agent")
    graph.add_edge("agent", END)
    return graph.compile(checkpointer=saver)


def measure_resume(workdir: Path, turns: int = 8) -> dict[str, Any]:
    path = str(workdir / "resume.sqlite")

    def run(thread_id: str, first: int, count: int) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-c", RESUME, path, thread_id, str(first), str(count)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"resume check failed:\n{out.stderr[-2000:]}")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    live = run("live", 0, turns)
    run("resumed", 0, turns - 1)
    resumed = run("resumed", turns - 1, 1)
    print(
        f"resume: turn {turns} reuses {live['reused_tokens']} of {live['prompt_tokens']} tokens "
        f"live, {resumed['reused_tokens']} of {resumed['prompt_tokens']} in a fresh process",
        flush=True,
    )
    return {"live": live, "resumed": resumed}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avp-suite bench store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--turns", type=positive_int, default=300, help="thread length")
    parser.add_argument("--kv-mb", type=float, default=58.7, help="context size for save/load")
    parser.add_argument("--runs", type=positive_int, default=5, help="save/load repetitions")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated: " + ", ".join(BACKENDS)
    )
    parser.add_argument("--out", help="write results JSON (and a chart) here")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown or not args.backends:
        parser.error(f"--backends takes {', '.join(BACKENDS)}; got {', '.join(unknown) or '-'}")
    if not 0 < args.kv_mb <= 4096:
        parser.error(f"--kv-mb must be in (0, 4096], got {args.kv_mb}")
    with tempfile.TemporaryDirectory(prefix="avp-bench-store-") as folder:
        workdir = Path(folder)
        payload = {
            "benchmark": "store",
            "args": vars(args),
            "threads": measure_threads(args, workdir),
            "throughput": measure_throughput(args, workdir),
            "resume": measure_resume(workdir),
            "machine": machine(),
        }
    write_json(args.out, payload)
    return payload


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
