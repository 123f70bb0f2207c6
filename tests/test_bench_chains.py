"""The chain sweep and the KVCOMM benchmark run end to end on a tiny model."""

from __future__ import annotations

import json

from avp_core.bench import chain, kvcomm


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


def test_kvcomm_fifth_agent_prefills_only_its_prefix():
    result = kvcomm.main(
        [
            "--model",
            "tiny-qwen2",
            "--input-tokens",
            "150",
            "--prefix-tokens",
            "40",
            "--output-tokens",
            "8",
            "--runs",
            "1",
        ]
    )
    assert result["latent_prefilled"] < result["dense_prefilled"] / 3
    assert result["latent_reused"] > result["dense_prefilled"] / 2
