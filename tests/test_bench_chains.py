"""The chain sweep and the KVCOMM benchmark run end to end on a tiny model."""

from __future__ import annotations

import json

from avp_suite.bench import chain, kvcomm


def test_chain_sweep_text_grows_faster_than_latent(tmp_path):
    out = tmp_path / "chain.json"
    result = chain.main(
        [
            "--model",
            "tiny-qwen2",
            "--agents",
            "2,4",
            "--runs",
            "1",
            "--doc-tokens",
            "200",
            "--answer-tokens",
            "6",
            "--think-steps",
            "2",
            "--out",
            str(out),
        ]
    )
    rows = {(r["agents"], r["mode"]): r for r in result["rows"]}
    assert rows[(4, "latent")]["prefilled_tokens"] < rows[(4, "text")]["prefilled_tokens"] / 2
    text_growth = rows[(4, "text")]["prefilled_tokens"] - rows[(2, "text")]["prefilled_tokens"]
    latent_growth = (
        rows[(4, "latent")]["prefilled_tokens"] - rows[(2, "latent")]["prefilled_tokens"]
    )
    assert latent_growth < text_growth
    assert (4, "thinking-2 (approx.)") in rows
    assert json.loads(out.read_text())["rows"] and out.with_suffix(".png").exists()


def test_kvcomm_later_agents_reuse_the_input_and_earlier_outputs():
    args = "--model tiny-qwen2 --input-tokens 150 --prefix-tokens 40 --output-tokens 40 --runs 1"
    result = kvcomm.main([*args.split(), "--warmup", "1", "--recompute", "0.3"])["results"]
    assert set(result) == {"dense", "exact", "segments-r0", "segments-r0+anchors", "segments-r0.3"}
    dense, exact, segments = result["dense"][-1], result["exact"][-1], result["segments-r0"][-1]
    assert dense["agent"] == 5 and dense["reused"] == 0
    assert exact["reused"] > 40  # the agent's own prefix, from the earlier round
    assert segments["prefilled_tokens"] < dense["prefilled_tokens"] / 4
    assert segments["reused"] > 0.75 * dense["prompt_tokens"]
