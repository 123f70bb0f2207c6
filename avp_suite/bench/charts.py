"""PNG charts of benchmark results, one function per benchmark, each taking its JSON payload.

Every chart is drawn from the payload a benchmark writes, so ``avp-suite bench ... --out``
and :func:`redraw` (from saved JSON) give the same picture. matplotlib is optional (the
``bench`` extra): without it a chart is skipped with a one-line hint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def _color(series: str) -> str | None:
    """Text (the baseline) grey, exact latent blue, approximate: thinking orange, segment
    reuse purple (teal with anchors), darker for more recompute."""
    if series in ("text", "dense", "text + final context", "codec round trip"):
        return "#9aa5b1"
    if series in ("latent", "exact", "with contexts", "through the store"):
        return "#2b7bb9"
    if series == "handoff":
        return "#5aa469"
    if series.startswith("thinking"):  # darker orange for more steps
        shades = {"thinking-5": "#f3b27a", "thinking-10": "#e07b39", "thinking-20": "#a8501a"}
        return shades.get(series.split(" ")[0], "#e07b39")
    if series.startswith("segments") or series in ("with anchors",):
        ratio = series.split("-r")[1].split("+")[0] if "-r" in series else "0.15"
        shade = min(int(float(ratio) * 10), 3)
        anchored = "anchors" in series
        palette = (
            ("#8fd3c7", "#4fb0a0", "#2a8577", "#155c52")
            if anchored
            else ("#c9a7e4", "#9b6fc9", "#6f43a3", "#4a2477")
        )
        return palette[shade]
    return None


Panel = tuple[str, Sequence[str], Mapping[str, Sequence[float]]]
"""(title, group labels, {series name: one value per group})."""


def _pyplot() -> Any | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(install matplotlib for charts: python -m pip install matplotlib)")
        return None
    return plt


def _save(fig: Any, plt: Any, title: str, path: Path) -> Path:
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bars(path: str | Path, title: str, panels: Sequence[Panel]) -> Path | None:
    """Side-by-side grouped bar panels, each bar labelled with its value."""
    plt = _pyplot()
    if plt is None:
        return None
    width_in = sum(max(3.2, 1.5 + 0.9 * len(groups)) for _, groups, _ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width_in, 4), squeeze=False)
    for ax, (panel_title, groups, series) in zip(axes[0], panels):
        width = 0.8 / len(series)
        for index, (name, values) in enumerate(series.items()):
            offset = (index - (len(series) - 1) / 2) * width
            xs = [i + offset for i in range(len(groups))]
            drawn = ax.bar(xs, values, width, label=name, color=_color(name))
            if len(series) <= 3:  # more labels than that overlap; the tables have the numbers
                ax.bar_label(drawn, fmt=_fmt(values), fontsize=7)
        ax.set_xticks(range(len(groups)), groups, fontsize=8)
        ax.set_title(panel_title)
        ax.margins(y=0.15)
        if len(series) > 1:
            ax.legend(fontsize=8)
    return _save(fig, plt, title, Path(path))


def lines(
    path: str | Path, title: str, xlabel: str, panels: Sequence[tuple[str, dict[str, Any]]]
) -> Path | None:
    """Side-by-side line panels: (title, {series name: (xs, ys)})."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (panel_title, series) in zip(axes[0], panels):
        for name, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o", label=name, color=_color(name))
        ax.set_xlabel(xlabel)
        ax.set_title(panel_title)
        ax.legend(fontsize=8)
    return _save(fig, plt, title, Path(path))


def _fmt(values: Sequence[float]) -> str:
    return "%.0f" if max(values, default=0) >= 100 else "%.2g"


def framework_chart(payload: dict[str, Any], path: str | Path) -> Path | None:
    """Prefilled tokens and wall time, text vs latent, per framework (and chain length)."""
    rows = payload["rows"]
    lengths = sorted({r["agents"] for r in rows})
    keys = list(dict.fromkeys((r["framework"], r["agents"]) for r in rows))
    groups = [f if len(lengths) == 1 else f"{f}\nN={n}" for f, n in keys]
    by = {(r["framework"], r["agents"], r["mode"]): r for r in rows}

    def series(key: str) -> dict[str, list[float]]:
        return {mode: [by[(f, n, mode)][key] for f, n in keys] for mode in ("text", "latent")}

    agents = f"{lengths[0]}-agent" if len(lengths) == 1 else "N-agent"
    runs = payload.get("runs") or payload.get("args", {}).get("runs")
    load = payload.get("machine", {}).get("load_avg")
    measured = ", ".join(
        part
        for part in (f"median of {runs} runs" if runs else "", f"load {load[0]}" if load else "")
        if part
    )
    return bars(
        path,
        f"{agents} chain in each framework: text vs latent ({payload.get('model', '')})",
        [
            ("prefilled tokens, lower is better", groups, series("prefilled_tokens")),
            (f"wall time (s), lower is better\n{measured}".strip(), groups, series("wall_s")),
        ],
    )


def chain_chart(payload: dict[str, Any], path: str | Path) -> Path | None:
    """Prefilled tokens and wall time against chain length, one line per mode."""
    rows = payload["rows"]
    modes = list(dict.fromkeys(r["mode"] for r in rows))

    def series(key: str) -> dict[str, Any]:
        return {
            mode: (
                [r["agents"] for r in rows if r["mode"] == mode],
                [r[key] for r in rows if r["mode"] == mode],
            )
            for mode in modes
        }

    return lines(
        path,
        "Chain length sweep: text vs latent (connector, handoff layout)",
        "agents in the chain",
        [("prefilled tokens", series("prefilled_tokens")), ("wall time (s)", series("wall_s"))],
    )


def handoff_chart(payload: dict[str, Any], path: str | Path) -> Path | None:
    """Agent B's time to first token, prefilled tokens and the pipeline's wall time."""
    text, latent = payload["results"]["text"], payload["results"]["latent"]

    def panel(title: str, key: str, scale: float = 1.0) -> Panel:
        return (
            title,
            ["B"] if key != "pipeline_s" else ["A+B"],
            {"text": [text[key] * scale], "latent": [latent[key] * scale]},
        )

    return bars(
        path,
        f"Two-agent handoff on {payload['model'].split('[')[0]}: text vs latent",
        [
            panel("time to first token (ms)", "ttft_s", 1e3),
            panel("prefilled tokens", "prefilled_tokens"),
            panel("wall time (ms)", "pipeline_s", 1e3),
        ],
    )


def kvcomm_chart(payload: dict[str, Any], path: str | Path) -> Path | None:
    """Time to first token and prefilled tokens of agents 2..N, per reuse mode."""
    results = payload["results"]
    agents = [f"agent {row['agent']}" for row in results["dense"]]

    def series(key: str, scale: float = 1.0) -> dict[str, list[float]]:
        return {mode: [row[key] * scale for row in rows] for mode, rows in results.items()}

    return bars(
        path,
        f"KVCOMM's setting on {payload['args']['model']}: own prefixes, shared input",
        [
            ("time to first token (ms), lower is better", agents, series("ttft_s", 1e3)),
            ("prefilled tokens", agents, series("prefilled_tokens")),
        ],
    )


def patterns_chart(payload: dict[str, Any], path: str | Path) -> Path | None:
    """Prefilled tokens per framework pattern and agent count, per reuse mode."""
    rows = payload["rows"]
    groups = list(dict.fromkeys(f"{r['framework']}\n{r['agents']} agents" for r in rows))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    by = {(f"{r['framework']}\n{r['agents']} agents", r["mode"]): r for r in rows}
    series = {m: [by[(g, m)]["prefilled_tokens"] for g in groups if (g, m) in by] for m in modes}
    return bars(
        path,
        f"Own system prompt per agent, on {payload['model']}: prefilled tokens",
        [("prefilled tokens, lower is better", groups, series)],
    )


def tools_chart(payload: dict[str, Any], path: str | Path) -> Path | None:
    """Prefilled tokens and time to first token of a 5-call tool loop, text vs latent."""
    rows = payload["rows"]
    groups = list(dict.fromkeys(r["framework"] for r in rows))
    by = {(r["framework"], r["mode"]): r for r in rows}

    def series(key: str, scale: float = 1.0) -> dict[str, list[float]]:
        return {m: [by[(g, m)][key] * scale for g in groups] for m in ("text", "latent")}

    return bars(
        path,
        f"A 5-call ReAct tool loop on {payload['model']}",
        [
            ("prefilled tokens, lower is better", groups, series("prefilled_tokens")),
            ("median TTFT (ms), lower is better", groups, series("ttft_s", 1e3)),
        ],
    )


def codec_chart(payload: dict[str, Any], path: str | Path) -> Path | None:
    """Encode and decode time of each method on the same KV-cache."""
    results = payload["results"]
    methods = list(results)
    labels = [m.replace("reference ", "reference\n") for m in methods]
    return bars(
        path,
        f"KV-cache codec: {payload['bytes'] / 1e6:.1f} MB, lower is better",
        [
            (
                "time (ms)",
                labels,
                {
                    "encode": [results[m]["encode_s"] * 1e3 for m in methods],
                    "decode": [results[m]["decode_s"] * 1e3 for m in methods],
                },
            ),
        ],
    )


def fidelity_chart(payload: dict[str, Any], path: str | Path) -> Path | None:
    """Accuracy and agreement with text per path and shape, and prefilled tokens per path;
    with every agent's own system prompt, those against the recompute ratio instead."""
    rows = payload["rows"]
    if payload.get("roles") == "own":
        return _segment_curves(payload, path)
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    names = list(dict.fromkeys(r["path"] for r in rows))
    by = {(r["shape"], r["path"]): r for r in rows}

    def series(key: str, scale: float = 1.0) -> dict[str, list[float]]:
        return {name: [by[(shape, name)][key] * scale for shape in shapes] for name in names}

    tasks = by[("all", "text")]["tasks"]
    return bars(
        path,
        f"Answers on {payload['model']}: {tasks} fact tasks, every handoff path",
        [
            ("accuracy (%), higher is better", shapes, series("accuracy", 100)),
            ("agreement with text (%)", shapes, series("agreement", 100)),
            ("prefilled tokens, lower is better", shapes, series("prefilled_tokens")),
        ],
    )


def _segment_curves(payload: dict[str, Any], path: str | Path) -> Path | None:
    """Agreement, accuracy and prefilled share against the recompute ratio (own prompts)."""
    rows = {r["path"]: r for r in payload["rows"] if r["shape"] == "all"}
    text = rows["text"]
    curves: dict[str, dict[str, Any]] = {"agreement": {}, "accuracy": {}, "prefilled": {}}
    for anchored in (False, True):
        points = sorted(
            (float(name.split("-r")[1].split("+")[0]), row)
            for name, row in rows.items()
            if name.startswith("segments-r") and name.endswith("+anchors") == anchored
        )
        if not points:
            continue
        label = "with anchors" if anchored else "segments"
        ratios = [ratio for ratio, _ in points] + [1.0]
        curves["agreement"][label] = (ratios, [100 * r["agreement"] for _, r in points] + [100])
        curves["accuracy"][label] = (
            ratios,
            [100 * r["accuracy"] for _, r in points] + [100 * text["accuracy"]],
        )
        curves["prefilled"][label] = (
            ratios,
            [100 * r["prefilled_tokens"] / text["prefilled_tokens"] for _, r in points] + [100],
        )
    return lines(
        path,
        f"Segment reuse on {payload['model']}: {text['tasks']} tasks, own system prompts "
        "(ratio 1 = dense prefill)",
        "recompute ratio",
        [
            ("agreement with text (%)", curves["agreement"]),
            (f"accuracy (%), text {100 * text['accuracy']:.0f}%", curves["accuracy"]),
            ("prefilled tokens, % of text", curves["prefilled"]),
        ],
    )


def store_chart(payload: dict[str, Any], path: str | Path) -> Path | None:
    """Bytes a long thread leaves per backend against text + final context, and the time to
    hand a large context over through each backend against the codec alone."""
    threads, puts = payload["threads"], payload["throughput"]["results"]
    names = list(threads["runs"])
    baseline = [
        (threads["text"]["checkpoint_bytes"] + run["final_context_bytes"]) / 1e6
        for run in threads["runs"].values()
    ]
    backends = [name for name in puts if name != "codec round trip"]
    codec = puts["codec round trip"]["round_trip_s"] * 1e3
    turns = payload["args"]["turns"]
    return bars(
        path,
        f"Context stores ({turns}-turn thread; {payload['throughput']['bytes'] / 1e6:.1f} MB "
        "handoff), lower is better",
        [
            (
                "thread storage (MB)",
                names,
                {
                    "text + final context": baseline,
                    "with contexts": [r["total_bytes"] / 1e6 for r in threads["runs"].values()],
                },
            ),
            (
                "handoff: save + load (ms)",
                backends,
                {
                    "codec round trip": [codec] * len(backends),
                    "through the store": [puts[b]["round_trip_s"] * 1e3 for b in backends],
                },
            ),
        ],
    )


CHARTS: dict[str, Callable[[dict[str, Any], str | Path], Path | None]] = {
    "codec": codec_chart,
    "handoff": handoff_chart,
    "chain": chain_chart,
    "kvcomm": kvcomm_chart,
    "frameworks": framework_chart,
    "demo": framework_chart,
    "fidelity": fidelity_chart,
    "patterns": patterns_chart,
    "tools": tools_chart,
    "store": store_chart,
}
"""Benchmark name (the payload's ``benchmark`` field) to its chart."""


def redraw(path: str | Path) -> Path | None:
    """Draw the chart of a saved results JSON again (beside it, as .png)."""
    payload = json.loads(Path(path).read_text())
    chart = CHARTS.get(payload.get("benchmark", ""))
    return chart(payload, Path(path).with_suffix(".png")) if chart else None
