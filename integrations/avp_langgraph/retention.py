"""Free the saved contexts of deleted or pruned LangGraph threads."""

from __future__ import annotations

from typing import Any

from avp_core.errors import InvalidRequestError
from avp_core.store import ContextRef

from .serializer import AVPSerializer


def live_references(checkpointer: Any) -> set[ContextRef]:
    """Every context reference held by any checkpoint or pending write of ``checkpointer``
    (whose ``serde`` must be an :class:`AVPSerializer`); loads no context."""
    serde = getattr(checkpointer, "serde", None)
    if not isinstance(serde, AVPSerializer):
        raise InvalidRequestError(
            f"{type(checkpointer).__name__} does not use AVPSerializer (serde="
            f"{type(serde).__name__}): its checkpoints hold no context references"
        )
    with serde.references() as refs:
        for _ in checkpointer.list(None):
            pass
    return refs


def collect_garbage(checkpointer: Any, *, grace_s: float = 300.0) -> int:
    """Delete the saved contexts that no checkpoint of ``checkpointer`` refers to any more
    (those of deleted threads, or of checkpoints a pruning removed) and that were not used
    for ``grace_s`` seconds. Returns how many store records were deleted.

    Only for a store that this checkpointer alone uses: references held elsewhere (another
    checkpointer, saved AutoGen state) are not seen here, and their contexts would go too.
    """
    refs = live_references(checkpointer)
    serde: AVPSerializer = checkpointer.serde
    return serde.store.collect(refs, grace_s=grace_s)
