"""The handoff benchmark runs end to end on a tiny model and reports both paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avp_suite.bench.handoff import main


def test_handoff_benchmark_reports_both_paths(tmp_path: Path) -> None:
    out = tmp_path / "handoff.json"
    args = "--model tiny-qwen2 --doc-tokens 300 --answer-tokens 8 --runs 1 --think-steps 2"
    result = main([*args.split(), "--out", str(out)])
    text, latent = result["results"]["text"], result["results"]["latent"]
    assert 250 <= result["document_tokens"] <= 300
    assert text["reused_tokens"] == 0
    assert text["prefilled_tokens"] > result["document_tokens"]
    assert latent["reused_tokens"] > result["document_tokens"]
    assert latent["prefilled_tokens"] * 4 < text["prefilled_tokens"]
    assert result["checks"]["latent"]["b_deterministic"]
    assert result["kv_bytes"] > 0 and result["think"]["ms_per_step"] >= 0
    saved = json.loads(out.read_text())
    assert saved["benchmark"] == "handoff"
    assert set(saved["results"]) == {"text", "latent"}
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_handoff_benchmark_rejects_a_missing_reference_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "no-venv" / "bin" / "python")
    with pytest.raises(SystemExit) as exc:
        main(["--model", "tiny-qwen2", "--reference-python", missing])
    assert exc.value.code == 2
    error = capsys.readouterr().err
    assert "--reference-python" in error and missing in error and "no such executable" in error
