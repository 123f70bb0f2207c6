"""bench fidelity: a deterministic fact task set, and every path scored on the real model."""

from __future__ import annotations

import json

import pytest

from avp_suite.bench.facts import SHAPES, make_tasks
from avp_suite.cli import main


@pytest.fixture(scope="module")
def tasks(smollm2):
    return make_tasks(smollm2.tokenizer, 12, min_tokens=300, max_tokens=900)


def test_the_task_set_is_deterministic_and_well_formed(smollm2, tasks):
    again = make_tasks(smollm2.tokenizer, 12, min_tokens=300, max_tokens=900)
    assert again == tasks
    assert [t.shape for t in tasks] == [SHAPES[i % 3] for i in range(12)]
    for task in tasks:
        assert 0.9 * 300 <= task.doc_tokens <= 1.1 * 900  # tokens counted per sentence
        assert " ".join(task.parts) == task.document
        assert task.correct(task.document)  # the fact is in the document
        assert task.question.split()[-1].rstrip("?") in task.document
    assert len({t.doc_tokens for t in tasks}) > 6  # lengths spread over the range


def test_answers_are_matched_as_whole_words(tasks):
    task = next(t for t in tasks if t.answer.isdigit())
    assert task.correct(f"It holds {task.answer} coins.")
    assert not task.correct(f"It holds {task.answer}5 coins.")
    assert not task.correct("I do not know.")


def test_bench_fidelity_scores_every_path_and_exact_agrees_with_text(smollm2, tmp_path):
    args = ["--tasks", "3", "--think-steps", "5", "--workers", "1", "--max-doc-tokens", "400"]
    assert main(["bench", "fidelity", *args, "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "fidelity.json").read_text())
    rows = {(r["shape"], r["path"]): r for r in payload["rows"]}
    assert {p for _, p in rows} == {"text", "exact", "handoff", "thinking-5"}
    assert {s for s, _ in rows} == {"all", *SHAPES}
    assert rows[("all", "exact")]["agreement"] == 1.0  # the exact path is lossless
    assert rows[("all", "exact")]["prefilled_tokens"] < rows[("all", "text")]["prefilled_tokens"]
    for row in rows.values():
        assert 0 <= row["accuracy"] <= 1 and row["tasks"] >= 1
        assert row["prefilled_tokens"] > 0 and row["model_s"] > 0
    assert len(payload["answers"]) == 3 and payload["machine"]["load_avg"]
    assert (tmp_path / "fidelity.png").read_bytes().startswith(b"\x89PNG")
