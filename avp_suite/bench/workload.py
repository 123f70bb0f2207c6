"""The shared N-agent chain workload every framework runs (benchmarks and the demo).

A ~1,000-token document and a question go to a chain of agents; each agent has a role and
answers with greedy tokens (a fixed number with EOS ignored for random-weight models, up to
the end of its turn for a real one) after reading the document and the answers before it.
Each framework adapter implements ``run_chain(connector, workload, *, latent)`` in
``avp_<framework>.chain``; :func:`measure` runs it once and reads the usage of every model
call from the connector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

QUESTION = "What are the main points of this document, and what should a reader remember?"

ROLES: tuple[tuple[str, str], ...] = (
    ("researcher", "Answer the question from the document."),
    ("analyst", "Add the evidence the earlier answers missed."),
    ("critic", "Point out the weakest claim so far and correct it."),
    ("editor", "Merge everything above into one clear answer."),
    ("planner", "Turn the answers above into three next steps."),
    ("skeptic", "Say which step above is most likely to fail and why."),
    ("teacher", "Explain the main point above to a new reader."),
    ("reviewer", "Give the final verdict on the answers above."),
)


def make_document(tokenizer: Any, n_tokens: int) -> tuple[str, int]:
    """Deterministic English text (the embedded corpus) cut at a sentence end near
    ``n_tokens`` tokens; returns the text and its actual token count."""
    from avp_core._corpus import corpus

    text = corpus()
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    while len(ids) < n_tokens + 64:  # extend by repetition for very long documents
        text += "\n" + corpus()
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    doc = tokenizer.decode(ids[:n_tokens])
    cut = max(doc.rfind(". "), doc.rfind(".\n"))
    doc = doc[: cut + 1] if cut > len(doc) // 2 else doc[: doc.rfind(" ")]
    return doc, len(tokenizer(doc, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class ChainWorkload:
    """N agents, a shared document, fixed-length greedy answers."""

    document: str
    agents: int = 4
    answer_tokens: int = 64
    question: str = QUESTION
    ignore_eos: bool = True
    """True: every answer is exactly ``answer_tokens`` long (random-weight models never stop);
    False: answers end at the model's end-of-turn token (real models)."""

    @classmethod
    def for_tokenizer(
        cls,
        tokenizer: Any,
        *,
        agents: int = 4,
        doc_tokens: int = 1000,
        answer_tokens: int = 64,
        ignore_eos: bool = True,
    ) -> ChainWorkload:
        document, _ = make_document(tokenizer, doc_tokens)
        return cls(document, agents, answer_tokens, ignore_eos=ignore_eos)

    @property
    def task(self) -> str:
        """The opening user turn every agent shares."""
        return f"Document:\n{self.document}\n\nQuestion: {self.question}"

    def role(self, index: int) -> tuple[str, str]:
        """(name, instruction) of agent ``index`` (0-based); names repeat with a suffix past 8."""
        name, instruction = ROLES[index % len(ROLES)]
        suffix = f"-{index // len(ROLES) + 1}" if index >= len(ROLES) else ""
        return f"{name}{suffix}", f"You are the {name}. {instruction}"


@dataclass
class ChainRun:
    """One run of the chain through a framework: per-call usage and wall time."""

    framework: str
    mode: str
    agents: int
    prompt_tokens: int
    prefilled_tokens: int
    reused_tokens: int
    ttft_s: list[float]
    wall_s: float
    kv_bytes: int
    outputs: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        data = dict(vars(self))
        data.pop("outputs")
        data["reused_pct"] = 100.0 * self.reused_tokens / max(self.prompt_tokens, 1)
        return data


def kv_bytes_per_position(connector: Any) -> int:
    """Bytes of K and V for one position of the connector's model."""
    identity = connector.identity
    item = connector.dtype.itemsize if hasattr(connector.dtype, "itemsize") else 4
    return 2 * identity.num_layers * identity.num_kv_heads * identity.head_dim * item


def measure(
    framework: str, module: Any, connector: Any, workload: ChainWorkload, *, latent: bool
) -> ChainRun:
    """Run ``module.run_chain`` once and account every model call it made."""
    with connector.record() as calls:
        start = time.perf_counter()
        outputs = module.run_chain(connector, workload, latent=latent)
        wall = time.perf_counter() - start
    reused = sum(c.reused_tokens for c in calls)
    return ChainRun(
        framework=framework,
        mode="latent" if latent else "text",
        agents=workload.agents,
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        prefilled_tokens=sum(c.prefilled_tokens for c in calls),
        reused_tokens=reused,
        ttft_s=[c.ttft_s for c in calls],
        wall_s=wall,
        kv_bytes=reused * kv_bytes_per_position(connector),
        outputs=list(outputs),
    )
