"""Encode and decode AVP v1 messages (KV caches and hidden states).

Decoding untrusted bytes never runs code, and what it allocates grows with the bytes
received, never with what they claim: every count and length is checked against the bytes
present and a cap before anything is built, and a compressed section may expand at most
``max_expansion`` times. Every problem is a :class:`~avp_core.errors.DecodeError`. With a
``key``, messages are signed (HMAC-SHA256) and the decoder rejects any that is unsigned or
altered, before it parses anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import AVPError, DecodeError, EncodeError
from ..identity import ModelIdentity
from . import compression as zstd_section
from . import signing, tensors
from .checksum import crc32
from .header import (
    FLAG_COMPRESSED,
    FLAG_HAS_MAP,
    FLAG_KV_CACHE,
    HEADER_SIZE,
    Header,
    unpack_header,
)
from .scan import MAX_LAYERS, scan_metadata
from .schema import DataType, LayerShapeProto, MetadataProto, PayloadType, WireMode
from .signing import Key
from .tensors import LayerShape

if TYPE_CHECKING:
    import torch

DEFAULT_MAX_BYTES = 1 << 30
"""Default cap on a message's size and on its decompressed tensor section (1 GiB: the KV of
8k tokens of an 8B model with grouped-query attention in float16)."""
DEFAULT_MAX_METADATA_BYTES = 4 << 20
"""Default cap on the metadata (4 MiB: token ids and text of about a million tokens)."""
DEFAULT_MAX_EXPANSION = 16
"""How many times its compressed size a tensor section may expand (KV compresses 1.1-1.5x)."""

_USER_FIELDS = (
    "session_id", "source_agent_id", "target_agent_id", "model_id", "hidden_dim", "num_layers",
    "mode", "avp_map_id", "extra", "token_ids", "identity", "latent_steps", "text", "created_at",
    "last_hidden",
)  # fmt: skip


@dataclass(frozen=True)
class Metadata:
    """Decoded metadata; attribute names follow the protobuf fields (plus our extensions)."""

    session_id: str = ""
    source_agent_id: str = ""
    target_agent_id: str = ""
    model_id: str = ""
    hidden_dim: int = 0
    num_layers: int = 0
    payload_type: PayloadType = PayloadType.HIDDEN_STATE
    dtype: DataType = DataType.FLOAT32
    tensor_shape: tuple[int, ...] = ()
    mode: WireMode = WireMode.LATENT
    compression: str | None = None
    avp_map_id: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)
    payload_checksum: int | None = None
    # avp-suite extensions (field numbers >= 16)
    token_ids: tuple[int, ...] = ()
    identity: ModelIdentity | None = None
    latent_steps: int = 0
    layers: tuple[LayerShape, ...] = ()
    text: str | None = None
    created_at: float = 0.0
    last_hidden: bytes = b""


@dataclass(frozen=True)
class Message:
    """A decoded message: header, metadata and the (uncompressed) tensor section."""

    header: Header
    metadata: Metadata
    payload: memoryview
    _shapes: tuple[LayerShape, ...] = ()
    signed: bool = False
    """The message carries a signature (extension field 23), checked or not."""
    authenticated: bool = False
    """True when ``decode`` was given a key and the message's signature matched it."""

    @property
    def is_kv_cache(self) -> bool:
        return self.metadata.payload_type == PayloadType.KV_CACHE

    def kv_cache(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer ``(k, v)`` tensors ``[1, heads, seq, dim]`` (views of the input buffer)."""
        if not self.is_kv_cache:
            raise DecodeError(f"message holds {self.metadata.payload_type.name}, not a KV cache")
        offset = tensors.KV_HEADER.size
        item = tensors.ITEM_SIZE[self.metadata.dtype]
        pairs = []
        for s in self._shapes:
            k_shape = (1, s.num_kv_heads, s.seq_len, s.key_dim)
            v_shape = (1, s.num_kv_heads, s.seq_len, s.value_dim)
            k = _view(self.payload, self.metadata.dtype, offset, k_shape)
            offset += s.num_kv_heads * s.seq_len * s.key_dim * item
            v = _view(self.payload, self.metadata.dtype, offset, v_shape)
            offset += s.num_kv_heads * s.seq_len * s.value_dim * item
            pairs.append((k, v))
        return pairs

    def hidden_state(self) -> torch.Tensor:
        """The hidden-state (or embedding) tensor with ``metadata.tensor_shape``."""
        if self.is_kv_cache:
            raise DecodeError("message holds a KV cache, not a hidden state; use kv_cache()")
        return _view(self.payload, self.metadata.dtype, 0, self.metadata.tensor_shape)

    def last_hidden(self) -> torch.Tensor | None:
        """The optional last hidden state extension as a 1-D tensor, or None."""
        raw = self.metadata.last_hidden
        if not raw:
            return None
        item = tensors.ITEM_SIZE[self.metadata.dtype]
        return _view(bytearray(raw), self.metadata.dtype, 0, (len(raw) // item,))


def _view(buffer: Any, dtype: DataType, offset: int, shape: Any) -> torch.Tensor:
    """:func:`tensors.view`, with torch's own complaints (a shape it cannot make) as
    DecodeErrors: decode checked the byte counts, so none is expected."""
    try:
        return tensors.view(buffer, dtype, offset, shape)
    except (RuntimeError, ValueError, OverflowError) as exc:
        raise DecodeError(f"cannot view tensor bytes as {dtype.name} {list(shape)}: {exc}") from exc


# -- encoding -------------------------------------------------------------------------------


def encode_kv_cache(
    kv: Any, *, compression: int | None = None, key: Key | None = None, **metadata: Any
) -> bytes:
    """Encode a KV cache (per-layer ``(k, v)`` ``[1, heads, seq, dim]`` or a transformers cache).

    ``metadata`` takes the protobuf field names (session_id, model_id, extra, ...) and the
    extensions token_ids, identity, latent_steps, text, created_at, last_hidden. ``key``
    (at least 16 bytes) signs the message (HMAC-SHA256, extension field 23).
    """
    return b"".join(_kv_cache_parts(kv, compression, key, metadata))


def write_kv_cache(
    target: Any, kv: Any, *, compression: int | None = None, key: Key | None = None, **metadata: Any
) -> int:
    """Encode a KV cache straight into ``target`` and return the message's size in bytes.

    ``target`` is a writable buffer at least that large (a ``bytearray``, ``mmap`` or
    memoryview; the message goes to its start) or a binary file (anything with ``write``).
    The bytes are the same as :func:`encode_kv_cache`'s, without building them as one new
    ``bytes`` object: into a buffer that is reused no fresh memory is touched (most of a large
    encode's time is faulting in new pages), and to a file the message is never whole in
    memory. Options are :func:`encode_kv_cache`'s.
    """
    parts = _kv_cache_parts(kv, compression, key, metadata)
    size = sum(part.nbytes for part in parts)
    if hasattr(target, "write"):
        for part in parts:
            target.write(part)
        return size
    try:
        view = memoryview(target).cast("B")
    except TypeError as exc:
        raise EncodeError(
            f"target must be a writable buffer or a binary file, got {type(target).__name__}"
        ) from exc
    if view.readonly or len(view) < size:
        raise EncodeError(
            f"target buffer must be writable and hold {size} bytes "
            f"({'read-only' if view.readonly else f'{len(view)} bytes'})"
        )
    offset = 0
    for part in parts:
        view[offset : offset + part.nbytes] = part
        offset += part.nbytes
    return size


def _kv_cache_parts(
    kv: Any, compression: int | None, key: Key | None, metadata: dict[str, Any]
) -> list[memoryview]:
    pairs = tensors.kv_layers(kv)
    shapes = tensors.layer_shapes(pairs)
    dtypes = {t.dtype for pair in pairs for t in pair}
    if len(dtypes) != 1:
        raise EncodeError(f"all K/V tensors must share one dtype; got {sorted(map(str, dtypes))}")
    dtype = tensors.wire_dtype(dtypes.pop())
    chunks = [memoryview(tensors.kv_section_header(shapes, dtype))]
    for k, v in pairs:
        chunks.extend(tensors.byte_chunks(k))
        chunks.extend(tensors.byte_chunks(v))
    proto = _metadata_proto(metadata, dtype)
    proto.payload_type = PayloadType.KV_CACHE
    if not proto.num_layers:
        proto.num_layers = len(shapes)
    if not tensors.is_uniform(shapes):
        proto.layers.extend(LayerShapeProto(**vars(s)) for s in shapes)
    return _message_parts(proto, chunks, compression, key)


def encode_hidden_state(
    tensor: Any, *, compression: int | None = None, key: Key | None = None, **metadata: Any
) -> bytes:
    """Encode a hidden-state tensor (any shape; ``tensor_shape`` records it); ``key`` signs."""
    torch = tensors.torch_module()
    if not isinstance(tensor, torch.Tensor):
        raise EncodeError(f"hidden state must be a torch.Tensor, got {type(tensor).__name__}")
    dtype = tensors.wire_dtype(tensor.dtype)
    proto = _metadata_proto(metadata, dtype)
    proto.payload_type = PayloadType.HIDDEN_STATE
    proto.tensor_shape.extend(int(d) for d in tensor.shape)
    if not proto.hidden_dim and tensor.dim():
        proto.hidden_dim = int(tensor.shape[-1])
    return b"".join(_message_parts(proto, list(tensors.byte_chunks(tensor)), compression, key))


def _metadata_proto(metadata: Mapping[str, Any], dtype: DataType) -> Any:
    unknown = set(metadata) - set(_USER_FIELDS)
    if unknown:
        raise EncodeError(
            f"unknown metadata fields {sorted(unknown)}; valid: {', '.join(_USER_FIELDS)}"
        )
    values = dict(metadata)
    extra = values.pop("extra", None) or {}
    identity = values.pop("identity", None)
    last_hidden = values.pop("last_hidden", None)
    mode = values.pop("mode", WireMode.LATENT)
    text = values.pop("text", None)
    try:
        proto = MetadataProto(**{k: v for k, v in values.items() if v is not None})
        proto.dtype = dtype
        proto.mode = _wire_mode(mode)
        for key, value in extra.items():
            proto.extra[str(key)] = str(value)
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"invalid metadata: {exc}") from exc
    if text is not None:
        proto.text = text
    if identity is not None:
        if isinstance(identity, Mapping):
            identity = ModelIdentity.from_dict(dict(identity))
        proto.identity_json = identity.to_json()
    if last_hidden is not None:
        hidden = last_hidden.detach().to("cpu", tensors.torch_dtype(dtype)).reshape(-1)
        proto.last_hidden = b"".join(tensors.byte_chunks(hidden))
    return proto


def _wire_mode(mode: Any) -> WireMode:
    """WireMode from a WireMode, an int, ``"latent"``/``"json"`` or an ``avp_core.Mode``."""
    value = getattr(mode, "value", mode)
    if isinstance(value, str):
        return WireMode.LATENT if value.lower() == "latent" else WireMode.JSON
    return WireMode(int(value))


def _message_parts(
    proto: Any, chunks: list[memoryview], level: int | None, key: Key | None
) -> list[memoryview]:
    """The message as buffers: header, metadata, then the tensor bytes (not copied)."""
    level = zstd_section.check_level(level)
    secret = signing.coerce_key(key)
    checksum = 0
    total = 0
    for chunk in chunks:
        checksum = crc32(chunk, checksum)
        total += chunk.nbytes
    proto.payload_checksum = checksum & 0xFFFFFFFF
    flags = FLAG_KV_CACHE if proto.payload_type == PayloadType.KV_CACHE else 0
    if proto.avp_map_id:
        flags |= FLAG_HAS_MAP
    if level is not None:
        proto.compression = "zstd"
        flags |= FLAG_COMPRESSED
        chunks = [memoryview(zstd_section.compress_chunks(chunks, total, level))]
        total = chunks[0].nbytes
    meta = proto.SerializeToString(deterministic=True)
    if secret is not None:
        meta += signing.mac_field(signing.mac(secret, flags, meta, chunks))
    header = Header(flags=flags, payload_length=len(meta) + total, metadata_length=len(meta))
    if header.payload_length > 0xFFFFFFFF:
        raise EncodeError(
            f"message of {header.payload_length} bytes exceeds the 4 GiB AVP v1 limit"
        )
    return [memoryview(header.pack()), memoryview(meta), *chunks]


# -- decoding -------------------------------------------------------------------------------


def decode(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    copy: bool = False,
    key: Key | None = None,
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
    max_expansion: int = DEFAULT_MAX_EXPANSION,
) -> Message:
    """Decode and fully validate a message.

    Tensors are views of ``data`` (no copy). With ``copy=True`` the tensor bytes are copied
    once into a private buffer, so the tensors do not keep ``data`` alive or share its memory.
    Compressed messages always decode into a new buffer, of at most ``max_bytes`` and at
    most ``max_expansion`` times the compressed bytes. With ``key``, an unsigned message or
    one whose signature does not match raises :class:`~avp_core.errors.AuthenticationError`.
    """
    try:
        buffer = memoryview(data).cast("B")
    except TypeError as exc:
        raise DecodeError(f"expected bytes, got {type(data).__name__}") from exc
    if len(buffer) > max_bytes + HEADER_SIZE:
        raise DecodeError(f"message of {len(buffer)} bytes exceeds max_bytes={max_bytes}")
    secret = signing.coerce_key(key)
    header = unpack_header(buffer)
    if header.metadata_length > max_metadata_bytes:
        raise DecodeError(
            f"metadata of {header.metadata_length} bytes exceeds "
            f"max_metadata_bytes={max_metadata_bytes}"
        )
    meta_end = HEADER_SIZE + header.metadata_length
    raw_meta = buffer[HEADER_SIZE:meta_end].tobytes()
    scan = scan_metadata(raw_meta)
    payload = buffer[meta_end:]
    if secret is not None:
        signed = memoryview(raw_meta)[: scan.mac_start]
        signing.verify(secret, scan.mac, header.flags, signed, payload)
    proto = MetadataProto()
    try:
        proto.ParseFromString(raw_meta)
    except Exception as exc:  # protobuf raises its own DecodeError and sometimes others
        raise DecodeError(f"metadata is not a valid protobuf Metadata message: {exc}") from exc
    metadata = _metadata(proto)
    _check_flags(header, metadata)
    if header.compressed:
        limit = min(max_bytes, max_expansion * len(payload))
        payload = memoryview(zstd_section.decompress(payload, limit))
    elif copy:
        payload = memoryview(bytearray(payload))
    if metadata.payload_checksum is not None:
        actual = crc32(payload) & 0xFFFFFFFF
        if actual != metadata.payload_checksum:
            raise DecodeError(
                f"checksum mismatch: metadata says {metadata.payload_checksum:#010x}, "
                f"tensor bytes give {actual:#010x}; the message is corrupt"
            )
    shapes: tuple[LayerShape, ...] = ()
    if metadata.payload_type == PayloadType.KV_CACHE:
        layer_shapes, dtype = tensors.parse_kv_section(
            payload, metadata.dtype, metadata.layers, MAX_LAYERS
        )
        shapes = tuple(layer_shapes)
        metadata = replace(metadata, dtype=dtype)
    else:
        _check_tensor_bytes(metadata, len(payload))
    return Message(header, metadata, payload, shapes, bool(scan.mac), secret is not None)


def _enum(enum_type: Any, value: int, name: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        valid = ", ".join(f"{m.name}={m.value}" for m in enum_type)
        raise DecodeError(f"unknown {name} value {value} (valid: {valid})") from None


def _metadata(proto: Any) -> Metadata:
    identity = None
    if proto.identity_json:
        try:
            identity = ModelIdentity.from_json(proto.identity_json)
        except (AVPError, ValueError, TypeError, RecursionError) as exc:
            raise DecodeError(f"identity extension is not a valid model identity: {exc}") from exc
    return Metadata(
        session_id=proto.session_id,
        source_agent_id=proto.source_agent_id,
        target_agent_id=proto.target_agent_id,
        model_id=proto.model_id,
        hidden_dim=proto.hidden_dim,
        num_layers=proto.num_layers,
        payload_type=_enum(PayloadType, proto.payload_type, "payload_type"),
        dtype=_enum(DataType, proto.dtype, "dtype"),
        tensor_shape=tuple(proto.tensor_shape),
        mode=_enum(WireMode, proto.mode, "mode"),
        compression=proto.compression if proto.HasField("compression") else None,
        avp_map_id=proto.avp_map_id,
        extra=dict(proto.extra),
        payload_checksum=proto.payload_checksum if proto.HasField("payload_checksum") else None,
        token_ids=tuple(proto.token_ids),
        identity=identity,
        latent_steps=proto.latent_steps,
        layers=tuple(
            LayerShape(s.num_kv_heads, s.seq_len, s.key_dim, s.value_dim) for s in proto.layers
        ),
        text=proto.text if proto.HasField("text") else None,
        created_at=proto.created_at,
        last_hidden=bytes(proto.last_hidden),
    )


def _check_flags(header: Header, metadata: Metadata) -> None:
    is_kv = metadata.payload_type == PayloadType.KV_CACHE
    if header.kv_cache != is_kv:
        raise DecodeError(
            f"header KV flag ({header.kv_cache}) contradicts payload_type "
            f"{metadata.payload_type.name}"
        )
    if header.has_map != bool(metadata.avp_map_id):
        raise DecodeError(
            f"header map flag ({header.has_map}) contradicts avp_map_id {metadata.avp_map_id!r}"
        )
    if metadata.compression not in (None, "", "zstd"):
        raise DecodeError(f"unknown compression {metadata.compression!r} (only zstd is defined)")
    if header.compressed != (metadata.compression == "zstd"):
        raise DecodeError(
            f"header compressed flag ({header.compressed}) contradicts compression "
            f"{metadata.compression!r}"
        )
    if metadata.dtype == DataType.INT8:
        raise DecodeError("INT8 tensors need quantization parameters, which AVP v1 does not define")
    if metadata.last_hidden and len(metadata.last_hidden) % tensors.ITEM_SIZE[metadata.dtype]:
        raise DecodeError("last_hidden extension is not a whole number of elements")


def _check_tensor_bytes(metadata: Metadata, actual: int) -> None:
    """The shape (at most MAX_DIMS dimensions, checked by the scan) accounts for the bytes;
    even an empty tensor must have a shape torch can make (strides under 2**62)."""
    count = extent = 1
    for dim in metadata.tensor_shape:
        count *= dim
        extent *= max(dim, 1)
    if extent >= 1 << 62:
        raise DecodeError(f"tensor_shape {list(metadata.tensor_shape)} is too large for a tensor")
    expected = count * tensors.ITEM_SIZE[metadata.dtype]
    if expected != actual:
        raise DecodeError(
            f"tensor_shape {list(metadata.tensor_shape)} of {metadata.dtype.name} needs {expected} "
            f"bytes but {actual} are present"
        )
