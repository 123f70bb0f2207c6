"""Anchor pool: offsets a segment's KV takes on when it moves under another prefix (KVCOMM).

The KV of a run of tokens depends on what precedes it. After moving a cached run to a new
prompt (keys re-rotated), what remains is an offset that depends on the old and the new
prefix, and similar content sees similar offsets. An anchor records, for one run that was
computed densely in its new place, its moved ("base") values and the exact offsets of its
keys and values there. A later run placed between the same pair of prefixes is matched to
the anchors by its base values; the offset estimate is the softmax-weighted mix of their
offsets, token by token. A run whose match is not confident (high entropy of the weights,
or fewer than two anchors) is computed densely and becomes an anchor.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import torch

POOL_BYTES = 256 << 20
"""Bytes all anchors together may hold (float16 tensors); the least used go first."""
_WINDOW = 5
"""Eviction looks at the oldest anchors of a key, this many."""


@dataclass
class _Anchor:
    base_values: torch.Tensor  # [layers, heads, tokens, head_dim], float16
    key_offsets: torch.Tensor
    value_offsets: torch.Tensor
    uses: int = 0
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = sum(
            t.numel() * t.element_size()
            for t in (self.base_values, self.key_offsets, self.value_offsets)
        )

    @property
    def length(self) -> int:
        return int(self.base_values.shape[-2])


class AnchorPool:
    """Anchors per placement key (which prefix a run left, which it joins); thread-safe."""

    def __init__(self, max_per_key: int = 20, max_bytes: int = POOL_BYTES) -> None:
        self.max_per_key = max_per_key
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pools: dict[tuple[int, ...], list[_Anchor]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return sum(len(anchors) for anchors in self._pools.values())

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._pools.clear()
            self._bytes = 0

    def estimate(
        self, key: tuple[int, ...], base_values: torch.Tensor, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Key and value offsets for a run whose moved values are ``base_values``
        ([layers, heads, tokens, head_dim]), or None when no confident match exists.

        Anchors of any length take part: each covers the run's first tokens up to its own
        length, and a token no anchor covers gets no offset."""
        length = base_values.shape[-2]
        with self._lock:
            anchors = list(self._pools.get(key, []))
        if len(anchors) < 2:
            return None
        new = base_values.float()
        per_token = torch.full((len(anchors), length), float("inf"))
        distance = torch.empty(len(anchors))
        for i, anchor in enumerate(anchors):
            n = min(length, anchor.length)
            gap = anchor.base_values[:, :, :n].float() - new[:, :, :n]
            per_token[i, :n] = gap.abs().mean(dim=(0, 1, 3))
            distance[i] = gap.norm() * (length / n) ** 0.5  # as if over the whole run
        weights = torch.softmax(-distance, dim=0)
        entropy = float(-(weights * torch.log2(weights + 1e-40)).sum())
        if entropy > threshold * math.log2(len(anchors)):
            return None
        covered = torch.isfinite(per_token).any(dim=0)
        token_weights = torch.softmax(-per_token, dim=0).nan_to_num(0.0) * covered
        shape = (*base_values.shape[:2], length, base_values.shape[-1])
        keys, values = torch.zeros(shape), torch.zeros(shape)
        for i, anchor in enumerate(anchors):
            n = min(length, anchor.length)
            weight = token_weights[i, :n][None, None, :, None]
            keys[:, :, :n] += weight * anchor.key_offsets[:, :, :n].float()
            values[:, :, :n] += weight * anchor.value_offsets[:, :, :n].float()
        with self._lock:
            covered_weight = 0.0
            for i in torch.argsort(weights, descending=True).tolist():
                anchors[i].uses += 1  # the anchors carrying 90% of the weight were used
                covered_weight += float(weights[i])
                if covered_weight >= 0.9:
                    break
        return keys, values

    def add(
        self,
        key: tuple[int, ...],
        base_values: torch.Tensor,
        key_offsets: torch.Tensor,
        value_offsets: torch.Tensor,
    ) -> None:
        """Record a run computed densely in its new place."""
        anchor = _Anchor(
            base_values.to(torch.float16),
            key_offsets.to(torch.float16),
            value_offsets.to(torch.float16),
        )
        if anchor.nbytes > self.max_bytes:
            return
        with self._lock:
            anchors = self._pools.setdefault(key, [])
            anchors.append(anchor)
            self._bytes += anchor.nbytes
            if len(anchors) > self.max_per_key:
                self._evict(anchors)
            while self._bytes > self.max_bytes:
                largest = max(self._pools.values(), key=len)
                self._evict(largest)

    def _evict(self, anchors: list[_Anchor]) -> None:
        oldest = anchors[:_WINDOW]
        victim = min(oldest, key=lambda a: a.uses)
        anchors.remove(victim)
        self._bytes -= victim.nbytes
        for key in [k for k, pool in self._pools.items() if not pool]:
            del self._pools[key]
