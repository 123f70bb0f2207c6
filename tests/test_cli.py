"""The avp-suite command: inspect, self-check, bench options and charts, clear errors."""

from __future__ import annotations

import json

from vectors import REFERENCE_DIR

from avp_suite import cli
from avp_suite.cli import main


def test_inspect_describes_a_reference_message(capsys):
    assert cli.main(["inspect", str(REFERENCE_DIR / "kv_bf16_zstd.avp")]) == 0
    out = capsys.readouterr().out
    assert "AVP v1" in out and "compressed" in out and "kv-cache" in out
    assert "KV_CACHE" in out and "BFLOAT16" in out and "3 layers" in out
    assert "verified" in out


def test_inspect_of_a_context_shows_tokens_and_identity(qwen, tmp_path, capsys):
    context = qwen.generate("Plan a trip.", max_new_tokens=4).context
    path = tmp_path / "ctx.avp"
    path.write_bytes(context.to_bytes())
    assert cli.main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"token_ids: {context.seq_len}" in out and "tiny-qwen2" in out


def test_inspect_of_a_signed_context_checks_it_with_the_environment_key(
    qwen, tmp_path, capsys, monkeypatch
):
    key = "inspect-key-0123456789abcdef"
    context = qwen.generate("Plan a trip.", max_new_tokens=4).context
    path = tmp_path / "ctx.avp"
    path.write_bytes(context.to_bytes(key=key))
    assert cli.main(["inspect", str(path)]) == 0
    assert "signature: HMAC-SHA256, not checked (set AVP_SUITE_KEY" in capsys.readouterr().out
    monkeypatch.setenv("AVP_SUITE_KEY", key)
    assert cli.main(["inspect", str(path)]) == 0
    assert "checked with $AVP_SUITE_KEY" in capsys.readouterr().out
    monkeypatch.setenv("AVP_SUITE_KEY", key[::-1])
    assert cli.main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "signature does not match" in err and "Traceback" not in err


def test_bad_files_give_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.avp"
    bad.write_bytes(b"not an avp message at all")
    assert cli.main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "DecodeError" in err and "magic" in err and "Traceback" not in err
    assert cli.main(["inspect", str(tmp_path / "missing.avp")]) == 2


def test_self_check_passes():
    lines = cli.self_check()
    assert any("LATENT" in line for line in lines) and any("JSON" in line for line in lines)


KVCOMM_TINY = (
    "--model tiny-qwen2 --agents 3 --input-tokens 120 --prefix-tokens 30 --output-tokens 4 "
    "--runs 1 --warmup 0 --recompute 0.3"
)


def test_bench_takes_out_anywhere_and_passes_the_rest_to_the_benchmark(tmp_path):
    assert main(["bench", "kvcomm", *KVCOMM_TINY.split(), "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "kvcomm.json").read_text())
    assert saved["args"]["input_tokens"] == 120 and len(saved["results"]["dense"]) == 2
    assert (tmp_path / "kvcomm.png").read_bytes().startswith(b"\x89PNG")


def test_bench_all_rejects_benchmark_options(capsys):
    assert main(["bench", "all", "--runs", "1"]) == 2
    assert "one benchmark at a time" in capsys.readouterr().err


def test_charts_redraw_from_saved_json(tmp_path):
    from avp_suite.bench.charts import redraw

    main(["bench", "kvcomm", *KVCOMM_TINY.split(), "--out", str(tmp_path)])
    (tmp_path / "kvcomm.png").unlink()
    assert redraw(tmp_path / "kvcomm.json") == tmp_path / "kvcomm.png"
    assert (tmp_path / "kvcomm.png").exists()


def _one_line_error(capsys, argv: list[str], *expected: str) -> None:
    """Exit code 2, one message naming the problem, no traceback."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage error
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert all(text in err for text in expected), err
    assert ".." not in err.replace("...", "")  # no doubled full stop


def test_inspect_of_a_directory_is_one_line(tmp_path, capsys):
    _one_line_error(capsys, ["inspect", str(tmp_path)], "Is a directory", str(tmp_path))


def test_bad_numbers_are_usage_errors(capsys):
    _one_line_error(capsys, ["demo", "--agents", "0"], "--agents", "positive integer")
    _one_line_error(capsys, ["inspect", "x.avp", "--max-bytes", "-1"], "--max-bytes")
    _one_line_error(capsys, ["bench", "chain", "--agents", "0,2"], "--agents", "'0'")
    _one_line_error(capsys, ["bench", "fidelity", "--tasks", "many"], "--tasks", "integer")


def test_a_model_that_cannot_exist_is_refused_at_once(capsys):
    for name, reason in (("nosuch-model", "unknown name"), ("/does/not/exist", "no such dir")):
        _one_line_error(capsys, ["demo", "--model", name], repr(name), reason, "smollm2-135m")


def test_help_shows_defaults_and_describes_every_benchmark(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "(default: smollm2-135m)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in [*cli.BENCHMARKS, "all"])
