"""Content-addressed context records: a context stored as its new positions on a parent.

A record is one AVP KV message holding positions ``[parent_len, seq_len)`` of a context
plus, in its ``extra`` map, the key of the parent record whose first ``parent_len``
positions come before them (no parent: the record holds every position). Its key is the
SHA-256 of the model's fingerprints, the parent key and length, the record's token ids and
the bytes of its tensors, so equal content gets one key, and a reader recomputes the key of
every record it reads before trusting it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..context import AVPContext
from ..errors import DecodeError

if TYPE_CHECKING:
    import torch

    from ..identity import ModelIdentity
    from ..wire.signing import Key

PARENT = "avp_suite.parent"
PARENT_LEN = "avp_suite.parent_len"
_KEY_PATTERN = re.compile(r"[0-9a-f]{64}")
_DOMAIN = b"avp-suite context record v1\0"


def check_key(key: object) -> str:
    """``key`` if it is a content key (64 lowercase hex digits); else DecodeError."""
    if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key):
        raise DecodeError(f"not a context key (64 hex digits): {str(key)[:80]!r}")
    return key


@dataclass(frozen=True)
class ContextRef:
    """A small, JSON-able reference to a context in a :class:`~avp_core.ContextStore`.

    ``key`` is the content address of the context's bytes; ``store`` names the store that
    holds them (informational: a reader loads through the store it is given); ``context_id``,
    ``seq_len`` and ``model`` describe the context without loading it.
    """

    key: str
    context_id: str
    seq_len: int
    model: str | None = None
    store: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "context_id": self.context_id,
            "seq_len": self.seq_len,
            "model": self.model,
            "store": self.store,
        }

    @classmethod
    def from_dict(cls, data: object) -> ContextRef:
        """Inverse of :meth:`to_dict`, for untrusted input: every field is type-checked."""
        if not isinstance(data, dict):
            raise DecodeError(f"a context reference is a JSON object, got {type(data).__name__}")
        key, context_id, seq_len = data.get("key"), data.get("context_id"), data.get("seq_len")
        model, store = data.get("model"), data.get("store", "")
        if not (isinstance(context_id, str) and len(context_id) <= 128):
            raise DecodeError("context reference: context_id must be a string of <= 128 chars")
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 0:
            raise DecodeError("context reference: seq_len must be a non-negative int")
        if not (model is None or isinstance(model, str)) or not isinstance(store, str):
            raise DecodeError("context reference: model and store must be strings")
        return cls(check_key(key), context_id, seq_len, model, store[:512])


@dataclass(frozen=True)
class Segment:
    """One decoded record: its own positions (``context``) and where its parent's end."""

    key: str
    parent: str | None
    parent_len: int
    context: AVPContext  # the record's positions, KV and fields (text, ids, identity...)


def model_fingerprint(identity: ModelIdentity | None) -> bytes:
    """What a content address takes from the model: every identity field but its name."""
    fields = identity.to_dict() if identity is not None else {}
    fields.pop("model_id", None)  # a name, not content
    return repr(sorted(fields.items())).encode()


def content_key(
    identity: ModelIdentity | None,
    parent: str | None,
    parent_len: int,
    sequence: Sequence[int],
    kv: Sequence[tuple[torch.Tensor, torch.Tensor]],
    last_hidden: torch.Tensor | None,
) -> str:
    """The SHA-256 content address of a record (see the module docstring)."""
    import numpy as np

    digest = hashlib.sha256(_DOMAIN)
    digest.update(model_fingerprint(identity))
    digest.update(f"\0{parent or ''}\0{parent_len}\0".encode())
    digest.update(np.asarray(sequence, dtype=np.int64).tobytes())
    tensors = [t for pair in kv for t in pair]
    if last_hidden is not None:
        tensors.append(last_hidden)
    for tensor in tensors:
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(_raw(tensor))
    return digest.hexdigest()


def encode_record(
    context: AVPContext,
    parent: str | None,
    parent_len: int,
    *,
    compression: int | None = None,
    key: Key | None = None,
) -> tuple[str, bytes]:
    """The content key and the bytes of a record holding ``context``'s positions from
    ``parent_len`` on (the first ``parent_len`` come from record ``parent``)."""
    from .. import wire

    segment = dataclasses.replace(
        context,
        sequence=context.sequence[parent_len:],
        kv=tuple(
            (k[..., parent_len:, :].contiguous(), v[..., parent_len:, :].contiguous())
            for k, v in context.kv
        ),
    )
    record_key = content_key(
        segment.identity, parent, parent_len, segment.sequence, segment.kv, segment.last_hidden
    )
    metadata = segment.wire_metadata()
    if parent is not None:
        metadata["extra"].update({PARENT: parent, PARENT_LEN: str(parent_len)})
    data = wire.encode_kv_cache(segment.kv, compression=compression, key=key, **metadata)
    return record_key, data


def decode_record(
    record_key: str, data: bytes, *, key: Key | None = None, max_bytes: int | None = None
) -> Segment:
    """Decode a record read from a store and check that its content has ``record_key``."""
    from .. import wire

    options: dict[str, Any] = {"key": key, "copy": False}
    if max_bytes is not None:
        options["max_bytes"] = max_bytes
    message = wire.decode(data, **options)
    extra = message.metadata.extra
    parent = extra.get(PARENT)
    try:
        parent_len = int(extra.get(PARENT_LEN, "0"))
    except ValueError:
        raise DecodeError("record has a non-numeric parent length") from None
    if parent is not None:
        check_key(parent)
    if (parent is None) != (parent_len == 0) or parent_len < 0:
        raise DecodeError("record names a parent without a length, or a length without one")
    context = AVPContext.from_message(message)
    if not context.sequence:
        raise DecodeError("record holds no positions")
    found = content_key(
        context.identity, parent, parent_len, context.sequence, context.kv, context.last_hidden
    )
    if found != record_key:
        raise DecodeError(f"record {record_key[:12]} does not hold the content its key names")
    return Segment(record_key, parent, parent_len, context)


def assemble(chain: Sequence[Segment]) -> AVPContext:
    """The context of ``chain[0]`` from its records, leaf first, each the previous one's parent.

    Tensors are copied once, into new memory (none is shared with the records' bytes).
    """
    import torch

    leaf = chain[0]
    pieces: list[tuple[Segment, int]] = []  # (record, positions taken from it), leaf first
    limit = leaf.parent_len + leaf.context.seq_len
    for index, segment in enumerate(chain):
        expected = chain[index - 1].parent if index else leaf.key
        if segment.key != expected:
            raise DecodeError("record chain is out of order")
        if segment.context.identity != leaf.context.identity:
            raise DecodeError("records of one context name different models")
        end = min(limit, segment.parent_len + segment.context.seq_len)
        pieces.append((segment, max(0, end - segment.parent_len)))
        limit = min(limit, segment.parent_len)
        if segment.parent is None:
            break
    if chain[len(pieces) - 1].parent is not None:
        raise DecodeError("record chain ends before its root record")
    pieces.reverse()
    sequence = tuple(t for segment, taken in pieces for t in segment.context.sequence[:taken])

    def joined(layer: int, part: int) -> torch.Tensor:
        taken = [segment.context.kv[layer][part][..., :n, :] for segment, n in pieces]
        return torch.cat(taken, dim=-2)

    try:
        kv = tuple((joined(layer, 0), joined(layer, 1)) for layer in range(leaf.context.num_layers))
    except (RuntimeError, IndexError) as exc:
        raise DecodeError(f"records of one context do not fit together: {exc}") from exc
    hidden = leaf.context.last_hidden
    return dataclasses.replace(
        leaf.context,
        sequence=sequence,
        kv=kv,
        last_hidden=hidden.clone() if hidden is not None else None,  # own memory too
    )


def _raw(tensor: torch.Tensor) -> memoryview:
    import torch

    flat = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
    return memoryview(flat.numpy()) if flat.numel() else memoryview(b"")  # type: ignore[arg-type]
