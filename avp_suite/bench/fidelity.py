"""Fidelity benchmark: answers measured on the real model, for every way agents hand off.

The task set (:mod:`avp_suite.bench.facts`) asks one fact from a document, in three shapes:
a reader -> answerer handoff, a 4-agent chain whose first agent reads, and three readers of
a third of the document each -> one aggregator. Every task runs through every path on the same
model, and each path is scored by exact match of the fact in the final answer:

- ``text``: every agent's prompt is prefilled from scratch (the baseline);
- ``exact``: the same prompts, reusing KV for the common token prefix (lossless: must agree
  with text on every task);
- ``handoff``: each agent continues the previous agent's context, its own instruction
  arriving as the next turn (the fan-out readers are threaded one after another, each
  reading its third after the ones before);
- ``thinking-K``: as handoff, but every agent except the last takes K latent steps instead
  of writing text (LatentMAS-style, approximate).

With ``--roles own`` every agent has its own system prompt instead (the pattern most graphs,
crews and teams are written in), the shapes are handoff and chain, and the paths are ``text``,
``exact`` (prefix reuse, which stops at the differing system prompt) and ``segments-rR``
(segment reuse with recompute ratio R; ``+anchors`` adds the anchor pool, warmed by the tasks
before), each agent reusing what the earlier agents of the task computed.

For every path: accuracy, agreement with the text path (same final answer), tokens prefilled
and model time. A call that has no context is the same computation on every path that makes
it, so it runs once and counts in each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from avp_core._args import positive_int, ratio_list

from .common import machine, table, write_json
from .facts import SHAPES, FactTask, make_tasks

SYSTEM = "You are a team of careful readers. Answer questions with words taken from the document."
READER = ("reader", "Reader: quote the sentence of the document that answers the question.", 14)
MIDDLE = (
    ("checker", "Checker: repeat the fact that answers the question.", 10),
    ("writer", "Writer: state the answer in one short sentence.", 10),
)
ANSWERER = ("answerer", "Answerer: answer the question with one word.", 8)
AGGREGATOR = ("aggregator", "Aggregator: answer the question with one word.", 8)
THINK_STEPS = (5, 10, 20)
RECOMPUTE = (0.0, 0.15, 0.3)
OWN_SYSTEM = {
    "reader": "You are the Reader of a team of careful readers. You quote documents exactly.",
    "checker": "You are the Checker of a team of careful readers. You confirm facts.",
    "writer": "You are the Writer of a team of careful readers. You write short, plain answers.",
    "answerer": "You are the Answerer of a team of careful readers. You answer in one word.",
}

Agent = tuple[str, str, int]
"""(role name, instruction turn, answer tokens)."""


def agents_of(task: FactTask) -> list[Agent]:
    if task.shape == "handoff":
        return [READER, ANSWERER]
    if task.shape == "chain":
        return [READER, *MIDDLE, ANSWERER]
    return [READER, READER, READER, AGGREGATOR]


def _turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def _task_turn(task: FactTask, document: str) -> dict[str, str]:
    q = task.question
    return _turn("user", f"Question: {q}\n\nDocument:\n{document}\n\nQuestion: {q}")


@dataclass
class PathRun:
    """One task through one path: the final answer and every model call's usage."""

    answer: str
    usage: list[Any] = field(default_factory=list)

    @property
    def prefilled(self) -> int:
        return sum(u.prefilled_tokens for u in self.usage)

    @property
    def seconds(self) -> float:
        return sum(u.total_s for u in self.usage)


class _Runner:
    """Runs a task through a path on one connector; shares context-free calls across paths."""

    def __init__(self, connector: Any) -> None:
        self.connector = connector
        self._fresh: dict[str, Any] = {}
        self.run = PathRun("")

    def generate(self, messages: list[dict[str, str]], tokens: int, **options: Any) -> Any:
        fresh = options.get("context") is None and not options.get("sources")
        key = json.dumps([messages, tokens]) if fresh else None
        result = self._fresh.get(key) if key else None
        if result is None:
            result = self.connector.generate(messages, max_new_tokens=tokens, **options)
            if key:
                self._fresh[key] = result
        self.run.usage.append(result.usage)
        return result

    def think(self, messages: list[dict[str, str]], steps: int, **options: Any) -> Any:
        with self.connector.record() as calls:
            context = self.connector.think(messages, steps=steps, **options)
        self.run.usage.extend(calls)
        return context

    def own(self, task: FactTask, name: str) -> PathRun:
        """``task`` through path ``name`` with every agent's own system prompt."""
        self.run = PathRun("")
        self.run.answer = _own_prompts(self, task, name).strip()
        return self.run

    def paths(self, task: FactTask, names: list[str]) -> dict[str, PathRun]:
        """``task`` through every path in ``names``; context-free calls are shared among
        those paths only."""
        try:
            if names[0] == OWN:
                return {name: self.own(task, name) for name in names[1:]}
            return {name: self.path(task, name) for name in names}
        finally:
            self._fresh.clear()

    def path(self, task: FactTask, name: str) -> PathRun:
        self.run = PathRun("")
        if task.shape == "fanout":
            answer = _fanout(self, task, name)
        else:
            answer = _conversation(self, task, name)
        self.run.answer = answer.strip()
        return self.run


def _steps(name: str) -> int:
    return int(name.split("-")[1]) if name.startswith("thinking-") else 0


def _conversation(runner: _Runner, task: FactTask, path: str) -> str:
    """Handoff and chain shapes: one conversation the agents take turns in."""
    agents = agents_of(task)
    conversation = [_turn("system", SYSTEM), _task_turn(task, task.document)]
    context = None
    steps = _steps(path)
    for index, (_, instruction, tokens) in enumerate(agents):
        last = index == len(agents) - 1
        if path in ("text", "exact") or index == 0:
            turns = [*conversation, _turn("user", instruction)]
            options: dict[str, Any] = {"context": context if path == "exact" else None}
        else:  # continue the previous agent's context; the role arrives as turns after it
            turns = [_turn("user", instruction)]
            options = {"context": context, "layout": "handoff"}
        if steps and not last:
            context = runner.think(turns, steps, **options)
            continue
        result = runner.generate(turns, tokens, **options)
        context = result.context
        if path in ("text", "exact"):
            conversation = [*turns, _turn("assistant", result.text)]
        if last:
            return str(result.text)
    raise AssertionError("unreachable")


def _own_prompts(runner: _Runner, task: FactTask, path: str) -> str:
    """Handoff and chain shapes, each agent with its own system prompt: the conversation
    (question and document, then the earlier answers) after it is shared, the prefix is not."""
    shared = [_task_turn(task, task.document)]
    contexts: list[Any] = []
    settings = segment_settings(path)
    for name, instruction, tokens in agents_of(task):
        turns = [_turn("system", OWN_SYSTEM[name]), *shared, _turn("user", instruction)]
        options: dict[str, Any] = {}
        if path == "exact" and contexts:
            options = {"context": contexts[-1]}
        elif settings is not None and contexts:
            options = {"segment_reuse": settings, "sources": contexts}
        result = runner.generate(turns, tokens, **options)
        contexts.append(result.context)
        shared = [*shared, _turn("user", instruction), _turn("assistant", result.text)]
    return str(result.text)


def segment_settings(path: str) -> Any:
    """The :class:`SegmentReuse` a ``segments-rR[+anchors]`` path names (None otherwise)."""
    if not path.startswith("segments-r"):
        return None
    from avp_core.reuse import SegmentReuse

    ratio, _, extra = path.removeprefix("segments-r").partition("+")
    return SegmentReuse(recompute=float(ratio), anchors=extra == "anchors")


def _fanout(runner: _Runner, task: FactTask, path: str) -> str:
    """Three readers, each of a third of the document, then one aggregator."""
    *readers, (_, instruction, tokens) = agents_of(task)
    steps = _steps(path)
    context = None
    notes: list[str] = []
    for part, (_, read, read_tokens) in zip(task.parts, readers):
        turns = [_task_turn(task, part), _turn("user", read)]
        if path in ("text", "exact") or context is None:
            turns.insert(0, _turn("system", SYSTEM))
            options: dict[str, Any] = {}
        else:  # thread the readers: each continues the context of the one before
            options = {"context": context, "layout": "handoff"}
        if steps:
            context = runner.think(turns, steps, **options)
            continue
        result = runner.generate(turns, read_tokens, **options)
        context, notes = result.context, [*notes, result.text]
    if path in ("text", "exact"):
        listed = "\n".join(f"{i}. {note.strip()}" for i, note in enumerate(notes, 1))
        q = task.question
        turns = [
            _turn("system", SYSTEM),
            _turn("user", f"Question: {q}\n\nNotes from three readers:\n{listed}\n\nQuestion: {q}"),
            _turn("user", instruction),
        ]
        options = {"context": context if path == "exact" else None}
    else:
        turns = [_turn("user", instruction)]
        options = {"context": context, "layout": "handoff"}
    return str(runner.generate(turns, tokens, **options).text)


OWN = "own"
"""First entry of a path list that runs with every agent's own system prompt."""


def paths(think_steps: tuple[int, ...] = THINK_STEPS) -> list[str]:
    return ["text", "exact", "handoff", *(f"thinking-{k}" for k in think_steps)]


def own_paths(recompute: tuple[float, ...] = RECOMPUTE) -> list[str]:
    """The own-system-prompt paths (after the :data:`OWN` marker)."""
    segments = [f"segments-r{r:g}" for r in recompute]
    return [OWN, "text", "exact", *segments, *(f"{s}+anchors" for s in segments)]


def evaluate(
    model: str,
    tasks: list[FactTask],
    names: list[str],
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[PathRun]]:
    """Every task through every path (all paths of a task in a row, so load hits them alike).

    With ``workers > 1`` tasks are spread over that many processes, each with its share of
    the CPU threads: one decode step of a small model gains little from a second thread, so
    two single-thread workers finish sooner than one two-thread process (1.37x measured on
    2 cores).
    """
    results: list[dict[str, PathRun] | None] = [None] * len(tasks)
    if workers <= 1:
        _start_worker(model, 0)
        for index, task in enumerate(tasks):
            results[index] = _task_paths(task, names)
            if progress is not None:
                progress(index + 1, len(tasks))
    else:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(model, threads),
        ) as pool:
            futures = {pool.submit(_task_paths, task, names): i for i, task in enumerate(tasks)}
            for done, future in enumerate(as_completed(futures), 1):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(done, len(tasks))
    names = names[1:] if names[0] == OWN else names
    return {name: [r[name] for r in results if r is not None] for name in names}


_WORKER: dict[str, Any] = {}


def _start_worker(model: str, threads: int) -> None:
    """Load the model once per process (``threads=0`` keeps torch's thread count)."""
    import torch

    from avp_core.connectors.hf import HuggingFaceConnector

    if threads:
        torch.set_num_threads(threads)
    if _WORKER.get("model") != model:
        _WORKER["runner"] = _Runner(HuggingFaceConnector.from_pretrained(model))
        _WORKER["model"] = model


def _task_paths(task: FactTask, names: list[str]) -> dict[str, PathRun]:
    runner: _Runner = _WORKER["runner"]
    return runner.paths(task, names)


def summarize(
    tasks: list[FactTask], runs: dict[str, list[PathRun]], shape: str | None = None
) -> list[dict[str, Any]]:
    """One row per path: accuracy, agreement with text, prefilled tokens, model time."""
    keep = [i for i, t in enumerate(tasks) if shape is None or t.shape == shape]
    text = runs["text"]
    rows = []
    for name, results in runs.items():
        picked = [results[i] for i in keep]
        rows.append(
            {
                "path": name,
                "shape": shape or "all",
                "tasks": len(picked),
                "accuracy": sum(tasks[i].correct(results[i].answer) for i in keep) / len(keep),
                "agreement": sum(results[i].answer == text[i].answer for i in keep) / len(keep),
                "prefilled_tokens": sum(r.prefilled for r in picked),
                "model_s": sum(r.seconds for r in picked),
                "median_task_s": statistics.median(r.seconds for r in picked),
            }
        )
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avp-suite bench fidelity",
        description="Answers on the real model: accuracy and agreement with text for every "
        "handoff path (text, exact latent, handoff layout, latent thinking).",
    )
    parser.add_argument("--model", default="smollm2-135m", help="built-in name or a path")
    parser.add_argument(
        "--tasks", type=positive_int, default=60, help="number of tasks (default 60)"
    )
    parser.add_argument(
        "--full", action="store_true", help="210 tasks, documents up to 1,500 tokens"
    )
    parser.add_argument("--seed", type=int, default=0, help="task set seed")
    parser.add_argument("--max-doc-tokens", type=int, default=700, help="longest document")
    parser.add_argument(
        "--think-steps", default="5,10,20", help="latent steps of the thinking paths ('' for none)"
    )
    parser.add_argument(
        "--roles",
        choices=("shared", "own"),
        default="shared",
        help="'own': every agent has its own system prompt; scores segment reuse",
    )
    parser.add_argument(
        "--recompute",
        type=ratio_list,
        default="0,0.15,0.3",
        help="recompute ratios of the segment paths (own)",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=2, help="processes sharing the CPU (default 2)"
    )
    parser.add_argument("--out", help="write results JSON (and a PNG chart beside it)")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    count, longest = (
        (max(args.tasks, 210), 1500) if args.full else (args.tasks, args.max_doc_tokens)
    )
    steps = tuple(int(s) for s in args.think_steps.split(",") if s.strip())

    from transformers import AutoTokenizer

    from avp_core import models

    path = models.build(args.model) if args.model in models.NAMES else args.model
    tasks = make_tasks(
        AutoTokenizer.from_pretrained(path), count, seed=args.seed, max_tokens=longest
    )
    names = paths(steps)
    shapes: tuple[str, ...] = SHAPES
    if args.roles == "own":
        shapes = ("handoff", "chain")
        tasks = [t for t in tasks if t.shape in shapes]
        names = own_paths(tuple(args.recompute))
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - start
        print(f"  task {done}/{total}, {elapsed:.0f} s", file=sys.stderr, flush=True)

    runs = evaluate(args.model, tasks, names, workers=args.workers, progress=progress)
    names = list(runs)
    rows = summarize(tasks, runs)
    for shape in shapes:
        rows += summarize(tasks, runs, shape)
    _print(args.model, tasks, rows)
    payload = {
        "benchmark": "fidelity",
        "model": args.model,
        "roles": args.roles,
        "args": vars(args),
        "rows": rows,
        "answers": [
            {"task": t.index, "shape": t.shape, "answer": t.answer}
            | {name: runs[name][i].answer for name in names}
            for i, t in enumerate(tasks)
        ],
        "wall_s": time.perf_counter() - start,
        "machine": machine(),
    }
    write_json(args.out, payload)
    return payload


def _print(model: str, tasks: list[FactTask], rows: list[dict[str, Any]]) -> None:
    tokens = [t.doc_tokens for t in tasks]
    print(
        f"{len(tasks)} tasks on {model}, documents {min(tokens)}-{max(tokens)} tokens; "
        "agreement = same final answer as the text path"
    )
    text = {r["shape"]: r for r in rows if r["path"] == "text"}
    print(
        table(
            ["shape", "path", "tasks", "accuracy", "agreement", "prefilled", "x fewer", "model s"],
            [
                [
                    r["shape"],
                    r["path"],
                    r["tasks"],
                    f"{100 * r['accuracy']:.0f}%",
                    f"{100 * r['agreement']:.0f}%",
                    r["prefilled_tokens"],
                    text[r["shape"]]["prefilled_tokens"] / max(r["prefilled_tokens"], 1),
                    r["model_s"],
                ]
                for r in rows
            ],
        )
    )
    exact = next(r for r in rows if r["path"] == "exact" and r["shape"] == "all")
    if any(r["path"].startswith("segments") for r in rows):
        print(
            "segments-rR: segment reuse, recomputing a fraction R (approximate); +anchors: "
            "offsets estimated from earlier tasks"
        )
    if exact["agreement"] < 1:
        print("WARNING: the exact path disagreed with text; this is a bug, please report it")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
