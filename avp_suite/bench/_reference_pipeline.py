"""Times the reference avp 0.6.2 think/generate pipeline; run with the reference venv's python.

Usage: python _reference_pipeline.py < job.json  -> one JSON line on stdout.
job: {"model": dir, "dtype": "float32", "a_messages": [...], "b_messages": [...],
"max_new_tokens": int, "runs": int, "threads": int}.

Agent A: ``HuggingFaceConnector.think(a_messages)`` with the reference's default number of
latent steps. Agent B: ``HuggingFaceConnector.generate(b_messages, context=A's context)``,
greedy, EOS not stopping generation (``eos_token_id=None`` forwarded to HF ``generate``); a
streamer records when B's first token is produced. One warm-up run, then ``runs`` timed runs.
The reference caches its realignment matrix under ``$AVP_CACHE_DIR`` (default ``~/.avp``).
Standalone on purpose: it imports only the reference package, torch, transformers and stdlib.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from typing import Any

import avp
import torch
import transformers
from avp.connectors.huggingface import HuggingFaceConnector


class Recorder:
    """A streamer: HF ``generate`` puts the prompt ids first, then each new token."""

    def __init__(self) -> None:
        self.puts: list[tuple[float, list[int]]] = []

    def put(self, value: Any) -> None:
        self.puts.append((time.perf_counter(), value.reshape(-1).tolist()))

    def end(self) -> None:
        pass


def run(conn: Any, job: dict[str, Any], steps: int) -> dict[str, Any]:
    recorder = Recorder()
    start = time.perf_counter()
    context = conn.think(job["a_messages"], steps=steps)
    thought = time.perf_counter()
    a_positions = context.seq_len
    conn.generate(
        job["b_messages"],
        context=context,
        max_new_tokens=job["max_new_tokens"],
        do_sample=False,
        eos_token_id=None,
        streamer=recorder,
    )
    end = time.perf_counter()
    prompt, tokens = recorder.puts[0][1], [t for _, ids in recorder.puts[1:] for t in ids]
    return {
        "think_s": thought - start,
        "ttft_s": recorder.puts[1][0] - thought,
        "total_s": end - thought,
        "pipeline_s": end - start,
        "a_positions": a_positions,
        "latent_steps": context.num_steps,
        "b_prefilled_tokens": len(prompt),
        "b_tokens": tokens,
    }


def main() -> None:
    job = json.load(sys.stdin)
    torch.set_num_threads(job["threads"])
    steps = inspect.signature(HuggingFaceConnector.think).parameters["steps"].default
    easy_steps = inspect.signature(avp.think).parameters["steps"].default
    conn = HuggingFaceConnector.from_pretrained(
        job["model"], device="cpu", dtype=getattr(torch, job["dtype"])
    )
    run(conn, job, steps)  # warm-up (also computes the realignment matrix)
    samples = [run(conn, job, steps) for _ in range(job["runs"])]
    info = {
        "avp": avp.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "easy_api_steps": easy_steps,
        "realignment_matrix": conn.needs_realignment(),
    }
    print(json.dumps({**info, "samples": samples}))


if __name__ == "__main__":
    main()
