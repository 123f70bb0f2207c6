"""`avp-suite demo` end to end: every installed framework (or the bare connector), real runs.

In a framework's tox env (AVP_SUITE_FRAMEWORK=<name>) the demo runs that framework for real;
where no framework is installed it runs the chain on the bare connector. Either way it must
write results.json in the documented shape and a chart, with latent prefilling less.
"""

from __future__ import annotations

import json
import os

import pytest
from frameworks_here import installed

from avp_suite.bench.frameworks import FRAMEWORKS
from avp_suite.cli import main

ROW_KEYS = {"framework", "mode", "agents", "prefilled_tokens", "reused_tokens", "ttft_s", "wall_s"}


def test_demo_writes_the_documented_results(tmp_path, capsys):
    only = os.environ.get("AVP_SUITE_FRAMEWORK")
    frameworks = [only] if only else installed()
    args = ["demo", "--model", "tiny-qwen2", "--agents", "3", "--out", str(tmp_path)]
    if frameworks:
        args += ["--frameworks", ",".join(frameworks)]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "tiny-qwen2" and results["machine"]["cpus"]
    rows = {(r["framework"], r["mode"]): r for r in results["rows"]}
    for framework in frameworks or ["connector"]:
        text, latent = rows[(framework, "text")], rows[(framework, "latent")]
        for row in (text, latent):
            assert set(row) >= ROW_KEYS and row["agents"] == 3 and len(row["ttft_s"]) == 3
        assert text["reused_tokens"] == 0 and latent["reused_tokens"] > 0
        assert latent["prefilled_tokens"] < text["prefilled_tokens"]
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")
    assert "prefilled" in capsys.readouterr().out  # the table


def test_a_missing_framework_is_one_line_not_a_traceback(tmp_path, capsys):
    missing = [name for name in FRAMEWORKS if name not in installed()]
    if not missing:
        pytest.skip("every framework is installed here: none to report missing")
    args = ["demo", "--model", "tiny-qwen2", "--agents", "2", "--frameworks", missing[0]]
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"skipped {missing[0]}" in out and "pip install" in out
    assert "Traceback" not in out


def test_an_unknown_framework_is_refused(tmp_path, capsys):
    assert main(["demo", "--frameworks", "haystack", "--out", str(tmp_path)]) == 2
    assert "unknown frameworks ['haystack']" in capsys.readouterr().err


def test_the_default_demo_shows_real_answers_side_by_side(smollm2, tmp_path, capsys):
    only = os.environ.get("AVP_SUITE_FRAMEWORK")
    frameworks = [only] if only else installed()
    args = ["demo", "--agents", "2", "--out", str(tmp_path)]  # the default model: smollm2-135m
    if frameworks:
        args += ["--frameworks", ",".join(frameworks)]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "smollm2-135m"
    rows = {(r["framework"], r["mode"]): r for r in results["rows"]}
    out = capsys.readouterr().out
    for framework in frameworks or ["connector"]:
        text, latent = rows[(framework, "text")], rows[(framework, "latent")]
        assert text["answer"].strip() and latent["answer"].strip()  # the model wrote something
        assert latent["prefilled_tokens"] < text["prefilled_tokens"]
        if latent["latent_path"].startswith("exact"):
            assert latent["answer"] == text["answer"]
        verdict = "same answer" if latent["answer"] == text["answer"] else "answers differ"
        assert f"{framework}: {verdict}" in out
    assert " text: " in out and "latent: " in out and "load average" in out
