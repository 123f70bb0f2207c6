"""SegmentReuse: the opt-in switch (and its settings) for approximate reuse of shared segments."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidRequestError


@dataclass(frozen=True)
class SegmentReuse:
    """Reuse KV of token runs that earlier contexts computed under a different prefix.

    Approximate: a reused run's keys are moved to their new positions exactly, but its
    values and keys still reflect the prefix it was computed under. Two corrections:

    - ``recompute``: the fraction of reused positions computed again, chosen where the
      cached KV deviates most from a cheap two-layer probe of the new prompt (CacheBlend's
      selection). ``0`` recomputes none; ``1`` recomputes all, which is dense prefill.
    - ``anchors``: estimate each run's prefix-dependent offset from offsets observed earlier
      for the same pair of prefixes (KVCOMM's anchor pool); a run with no close enough
      anchor is computed densely and becomes an anchor.

    Exact prefix reuse still comes first; only what follows it is reused approximately.
    """

    recompute: float = 0.15
    anchors: bool = False
    min_tokens: int = 32
    """Shortest run worth reusing."""
    chunk_tokens: int = 16
    """Index granularity: runs of ``2 * chunk_tokens - 1`` tokens or more are always found."""
    anchor_threshold: float = 0.3
    """Reuse through anchors only when the match is confident: the entropy of the anchor
    weights stays below this fraction of its maximum (KVCOMM's gamma)."""
    max_anchors: int = 20
    """Anchors kept per pair of prefixes (least used of the oldest evicted first)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.recompute <= 1.0:
            raise InvalidRequestError(f"recompute must be in [0, 1], got {self.recompute}")
        if self.min_tokens < 1 or self.chunk_tokens < 1:
            raise InvalidRequestError("min_tokens and chunk_tokens must be >= 1")
        if not 0.0 <= self.anchor_threshold <= 1.0:
            raise InvalidRequestError(
                f"anchor_threshold must be in [0, 1], got {self.anchor_threshold}"
            )
        if self.max_anchors < 2:
            raise InvalidRequestError(f"max_anchors must be >= 2, got {self.max_anchors}")

    @property
    def name(self) -> str:
        """A short label for reports, such as ``segments-r0.30+anchors``."""
        return f"segments-r{self.recompute:.2f}{'+anchors' if self.anchors else ''}"

    @classmethod
    def coerce(cls, value: SegmentReuse | bool | None) -> SegmentReuse | None:
        """``True`` means the default settings; ``False``/``None`` means off."""
        if value is True:
            return cls()
        if value is False or value is None:
            return None
        if isinstance(value, cls):
            return value
        raise InvalidRequestError(
            f"segment_reuse must be True, False, None or a SegmentReuse, got {value!r}"
        )
