"""Shared helpers for benchmarks: timing, machine description, tables and JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CREWAI_OFFLINE = {
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TESTING": "true",
}
"""What crewai needs to run offline and quietly (no tracing prompt, no telemetry)."""


def crewai_offline() -> None:
    """Set :data:`CREWAI_OFFLINE` where the environment does not say otherwise."""
    for name, value in CREWAI_OFFLINE.items():
        os.environ.setdefault(name, value)


def median_time(fn: Callable[[], Any], *, runs: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }
    if hasattr(os, "getloadavg"):
        info["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with right-aligned numbers."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append(
            "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        )
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def save_rows(benchmark: str, args: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The results of a benchmark that reports rows: its name, model, options, rows and the
    machine, written to ``args.out`` (JSON, and its chart) when given; returns them."""
    payload = {
        "benchmark": benchmark,
        "model": args.model,
        "args": vars(args),
        "rows": rows,
        "machine": machine(),
    }
    write_json(args.out, payload)
    return payload


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    """Write the payload as JSON and, when its benchmark has a chart, the chart beside it."""
    if path is None:
        return
    from .charts import CHARTS

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    chart = CHARTS.get(payload.get("benchmark", ""))
    if chart is not None and (png := chart(payload, path.with_suffix(".png"))):
        print(f"wrote {png}")
