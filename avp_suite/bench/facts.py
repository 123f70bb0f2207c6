"""A deterministic fact-finding task set, generated in code (no download).

Each task is a document of filler prose (sentences of the embedded corpus) with a few facts of
one kind planted in it: the one the question asks about and distractors of the same shape
("The blue locker holds 57 coins." among "The green locker holds 12 coins."). The answer is
one fact value, scored by exact match in the final answer. The same seed gives the same tasks
on every machine.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

SHAPES = ("handoff", "chain", "fanout")
"""reader -> answerer; a 4-agent chain whose reader is agent 1; 3 readers -> one aggregator."""

_PEOPLE = (
    "Mara Quill", "Tobin Ashe", "Lena Voss", "Ivo Marsh", "Nadia Crane", "Otto Brandt",
    "Sunniva Holt", "Rafael Dunn", "Greta Lind", "Pavel Orlov", "Alma Reyes", "Conrad Pike",
)  # fmt: skip
_CITIES = (
    "Lisbon", "Oslo", "Cairo", "Lima", "Dublin", "Kyoto", "Prague", "Nairobi", "Quebec",
    "Hanoi", "Vienna", "Perth", "Tunis", "Bergen", "Seville", "Denver",
)  # fmt: skip
_COLORS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple", "grey")
_THINGS = ("tower", "bridge", "library", "harbour", "market", "museum", "station", "garden")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class _Kind:
    """A fact template: how to state it and how to ask for it."""

    keys: tuple[str, ...]
    values: tuple[str, ...] | None  # None: a number
    statement: str
    question: str


_KINDS = (
    _Kind(_PEOPLE, _CITIES, "{key} lives in {value}.", "In which city does {key} live?"),
    _Kind(
        _COLORS,
        None,
        "The {key} locker holds {value} coins.",
        "How many coins does the {key} locker hold?",
    ),
    _Kind(
        _THINGS,
        _DAYS,
        "The old {key} is open only on {value}.",
        "On which day is the old {key} open?",
    ),
)


@dataclass(frozen=True)
class FactTask:
    """One question over one document; ``parts`` is the document split in three (fan-out)."""

    index: int
    shape: str
    document: str
    parts: tuple[str, str, str]
    question: str
    answer: str
    doc_tokens: int

    def correct(self, text: str) -> bool:
        """Whether ``text`` states the answer (exact match of the fact, word-bounded)."""
        return re.search(rf"(?<!\w){re.escape(self.answer)}(?!\w)", text, re.IGNORECASE) is not None


@cache
def _sentences() -> tuple[str, ...]:
    from avp_core._corpus import corpus

    found = re.split(r"(?<=[.!?])\s+", corpus().replace("\n", " "))
    return tuple(s for s in found if 30 <= len(s) <= 200 and not re.search(r"\d", s))


def _facts(rng: random.Random, distractors: int) -> tuple[list[str], str, str]:
    kind = rng.choice(_KINDS)
    keys = rng.sample(kind.keys, distractors + 1)
    if kind.values is None:
        values = [str(v) for v in rng.sample(range(11, 99), len(keys))]
    else:
        pool = kind.values
        values = [rng.choice(pool) for _ in keys]
        while values[0] in values[1:]:  # the answer must not also be a distractor's value
            values[0] = rng.choice(pool)
    statements = [kind.statement.format(key=k, value=v) for k, v in zip(keys, values)]
    return statements, kind.question.format(key=keys[0]), values[0]


def make_tasks(
    tokenizer: Any,
    count: int,
    *,
    seed: int = 0,
    min_tokens: int = 300,
    max_tokens: int = 1500,
    distractors: int = 1,
) -> list[FactTask]:
    """``count`` tasks, shapes in turn, document lengths spread over [min_tokens, max_tokens]."""
    rng = random.Random(seed)
    sentences = _sentences()
    tasks = []
    for index in range(count):
        target = min_tokens + (max_tokens - min_tokens) * (index * 7 % 10) // 9
        statements, question, answer = _facts(rng, distractors)
        start = rng.randrange(len(sentences))
        body: list[str] = []
        tokens = 0
        while tokens < target:
            sentence = sentences[(start + len(body)) % len(sentences)]
            body.append(sentence)
            tokens += len(tokenizer(sentence + " ", add_special_tokens=False)["input_ids"])
        slots = sorted(rng.sample(range(1, len(body)), len(statements)))
        shuffled = rng.sample(statements, len(statements))
        for offset, (slot, statement) in enumerate(zip(slots, shuffled)):
            body.insert(slot + offset, statement)
        third = len(body) // 3
        parts = (
            " ".join(body[:third]),
            " ".join(body[third : 2 * third]),
            " ".join(body[2 * third :]),
        )
        document = " ".join(body)
        doc_tokens = len(tokenizer(document, add_special_tokens=False)["input_ids"])
        shape = SHAPES[index % len(SHAPES)]
        tasks.append(FactTask(index, shape, document, parts, question, answer, doc_tokens))
    return tasks
