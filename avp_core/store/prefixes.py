"""Prefix index: find a saved context by its first tokens, from any process.

Every ``BLOCK`` positions of a saved context get an index entry: the SHA-256 chain of the
model's fingerprints and the token ids up to there, mapping to the record that holds those
positions. A prompt's hashes at the same boundaries find, with one backend query, the saved
context sharing its longest block-aligned prefix, as vLLM's and LMCache's block hashes do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .records import model_fingerprint

if TYPE_CHECKING:
    from ..identity import ModelIdentity

BLOCK = 64
"""Positions per index entry."""


def prefix_hashes(identity: ModelIdentity | None, tokens: Sequence[int]) -> list[tuple[int, str]]:
    """``(length, hash)`` of each block-aligned prefix of ``tokens``, shortest first."""
    import numpy as np

    state = hashlib.sha256(b"avp-suite prefix v1\0" + model_fingerprint(identity))
    ids = np.asarray(tokens, dtype=np.int64)
    found = []
    for end in range(BLOCK, len(ids) + 1, BLOCK):
        state.update(ids[end - BLOCK : end].tobytes())
        found.append((end, state.copy().hexdigest()))
    return found
