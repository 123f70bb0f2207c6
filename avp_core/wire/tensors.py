"""Tensor bytes: dtype tables, the KV section layout, zero-copy chunking and views.

The KV section (AVP v1) is a ``<IIIIB`` header -- num_layers, num_kv_heads, head_dim,
seq_len, dtype byte -- then K and V of each layer, each ``[heads, seq, head_dim]``
little-endian. Caches whose layers differ in shape write zeros for heads, head_dim and
seq_len and describe every layer in the metadata (``layers``); K is then
``[heads, seq, key_dim]`` and V ``[heads, seq, value_dim]``.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DecodeError, EncodeError, MissingDependencyError
from .schema import DataType

if TYPE_CHECKING:
    import torch

KV_HEADER = struct.Struct("<IIIIB")
KV_DTYPE_BYTES = {DataType.FLOAT32: 0, DataType.FLOAT16: 1, DataType.BFLOAT16: 2}
ITEM_SIZE = {DataType.FLOAT32: 4, DataType.FLOAT16: 2, DataType.BFLOAT16: 2, DataType.INT8: 1}


def torch_module() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "hf") from exc
    return torch


def wire_dtype(dtype: torch.dtype) -> DataType:
    torch = torch_module()
    table = {
        torch.float32: DataType.FLOAT32,
        torch.float16: DataType.FLOAT16,
        torch.bfloat16: DataType.BFLOAT16,
    }
    if dtype not in table:
        raise EncodeError(f"tensors must be float32, float16 or bfloat16; got {dtype}")
    return table[dtype]


def torch_dtype(dtype: DataType) -> torch.dtype:
    torch = torch_module()
    table = {
        DataType.FLOAT32: torch.float32,
        DataType.FLOAT16: torch.float16,
        DataType.BFLOAT16: torch.bfloat16,
        DataType.INT8: torch.int8,
    }
    return table[dtype]


@dataclass(frozen=True)
class LayerShape:
    """Shape of one layer's K ``[heads, seq, key_dim]`` and V ``[heads, seq, value_dim]``."""

    num_kv_heads: int
    seq_len: int
    key_dim: int
    value_dim: int

    @property
    def elements(self) -> int:
        return self.num_kv_heads * self.seq_len * (self.key_dim + self.value_dim)


def kv_layers(kv: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer ``(k, v)`` pairs from a sequence of pairs or a transformers cache."""
    if hasattr(kv, "layers") and not isinstance(kv, Sequence):  # transformers >= 4.56 caches
        pairs = [(layer.keys, layer.values) for layer in kv.layers]
    elif hasattr(kv, "key_cache") and hasattr(kv, "value_cache"):
        pairs = list(zip(kv.key_cache, kv.value_cache))
    else:
        try:
            pairs = [(k, v) for k, v in kv]
        except (TypeError, ValueError) as exc:
            raise EncodeError(
                "kv must be a sequence of per-layer (k, v) tensors or a transformers cache"
            ) from exc
    if not pairs:
        raise EncodeError("kv cache has no layers")
    return pairs


def layer_shapes(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[LayerShape]:
    shapes = []
    for index, (k, v) in enumerate(pairs):
        if k is None or v is None or k.dim() != 4 or v.dim() != 4:
            raise EncodeError(f"layer {index}: K and V must be 4-D [1, heads, seq, dim] tensors")
        if k.shape[0] != 1 or v.shape[0] != 1:
            raise EncodeError(f"layer {index}: batch size must be 1, got {k.shape[0]}")
        if k.shape[1:3] != v.shape[1:3]:
            raise EncodeError(f"layer {index}: K {tuple(k.shape)} and V {tuple(v.shape)} differ")
        shapes.append(LayerShape(k.shape[1], k.shape[2], k.shape[3], v.shape[3]))
    return shapes


def is_uniform(shapes: Sequence[LayerShape]) -> bool:
    first = shapes[0]
    return first.key_dim == first.value_dim and all(s == first for s in shapes)


def kv_section_header(shapes: Sequence[LayerShape], dtype: DataType) -> bytes:
    """The ``<IIIIB`` header; zeros for heads, head_dim and seq when layers differ."""
    if is_uniform(shapes):
        s = shapes[0]
        return KV_HEADER.pack(
            len(shapes), s.num_kv_heads, s.key_dim, s.seq_len, KV_DTYPE_BYTES[dtype]
        )
    return KV_HEADER.pack(len(shapes), 0, 0, 0, KV_DTYPE_BYTES[dtype])


def byte_chunks(tensor: torch.Tensor) -> Iterator[memoryview]:
    """The tensor's bytes in row-major order as contiguous memoryviews, copying only if needed.

    CPU tensors that are contiguous (or contiguous per leading index, like a slice along the
    sequence axis) are not copied; other devices are copied to CPU once.
    """
    if sys.byteorder != "little":  # pragma: no cover - no big-endian CI here
        raise EncodeError("encoding on big-endian hosts is not supported")
    torch = torch_module()
    if tensor.device.type != "cpu":
        tensor = tensor.detach().to("cpu")
    tensor = tensor.detach()
    if tensor.is_contiguous() or tensor.dim() <= 1:
        flat = tensor.contiguous().reshape(-1)
        if flat.dtype == torch.bfloat16:
            flat = flat.view(torch.int16)
        if flat.numel():
            array: Any = flat.numpy()
            yield memoryview(array).cast("B")
        return
    for part in tensor:
        yield from byte_chunks(part)


def view(buffer: Any, dtype: DataType, offset: int, shape: Sequence[int]) -> torch.Tensor:
    """A tensor of ``shape`` over ``buffer[offset:]`` (zero-copy)."""
    import warnings

    torch = torch_module()
    count = 1
    for dim in shape:
        count *= dim
    if count == 0:
        return torch.empty(tuple(shape), dtype=torch_dtype(dtype))
    with warnings.catch_warnings():  # read-only buffers are fine: contexts are immutable
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.frombuffer(buffer, dtype=torch_dtype(dtype), count=count, offset=offset)
    return tensor.view(tuple(shape))


def parse_kv_section(
    payload: memoryview, dtype: DataType, declared: Sequence[LayerShape], max_layers: int
) -> tuple[list[LayerShape], DataType]:
    """Check the KV section against its byte count and ``max_layers``; return each layer's
    shape and the dtype. Sizes are checked before any per-layer object is made.

    The section's own dtype byte wins over a metadata dtype left at its proto3 default
    (FLOAT32): AVP v1 writers do not always set the metadata field for KV caches.
    """
    if len(payload) < KV_HEADER.size:
        raise DecodeError(f"KV section is {len(payload)} bytes, shorter than its 17-byte header")
    layers, heads, head_dim, seq_len, dtype_byte = KV_HEADER.unpack_from(payload)
    by_byte = {v: k for k, v in KV_DTYPE_BYTES.items()}
    if dtype_byte not in by_byte:
        raise DecodeError(f"unknown KV dtype byte {dtype_byte} (0 f32, 1 f16, 2 bf16)")
    if by_byte[dtype_byte] != dtype and dtype == DataType.FLOAT32:
        dtype = by_byte[dtype_byte]
    elif by_byte[dtype_byte] != dtype:
        raise DecodeError(
            f"KV section dtype {by_byte[dtype_byte].name} contradicts metadata dtype {dtype.name}"
        )
    if layers == 0:
        raise DecodeError("KV section declares zero layers")
    if layers > max_layers:
        raise DecodeError(f"KV section declares {layers} layers, more than {max_layers}")
    actual = len(payload) - KV_HEADER.size
    if heads == head_dim == seq_len == 0:
        if len(declared) != layers:
            raise DecodeError(
                f"KV section of {layers} non-uniform layers needs {layers} layer shapes "
                f"in the metadata, found {len(declared)}"
            )
        shapes = list(declared)
    else:
        if declared:
            raise DecodeError("uniform KV section must not carry per-layer shapes")
        shape = LayerShape(heads, seq_len, head_dim, head_dim)
        if layers * shape.elements * ITEM_SIZE[dtype] != actual:
            raise DecodeError(
                f"KV section of {layers} layers [{heads}, {seq_len}, {head_dim}] needs "
                f"{layers * shape.elements * ITEM_SIZE[dtype]} tensor bytes but {actual} "
                "are present"
            )
        shapes = [shape] * layers
    expected = sum(s.elements for s in shapes) * ITEM_SIZE[dtype]
    if expected != actual:
        raise DecodeError(
            f"KV section shapes need {expected} tensor bytes but {actual} are present"
        )
    return shapes, dtype
