"""A bounded walk over the raw metadata bytes, run before protobuf parses them.

Protobuf turns small inputs into large objects (an empty repeated ``layers`` entry costs 3
bytes on the wire and about 150 in memory), so the decoder first walks the top-level fields
of the metadata at the byte level: it checks every length against the bytes present, caps
how many fields, layer shapes, map entries and tensor dimensions there can be, and finds the
``mac`` extension (which must be the last field). Nothing is allocated per field.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DecodeError

MAX_FIELDS = 8192
"""Top-level metadata fields (a message we write has about 20, plus one per layer shape)."""
MAX_LAYERS = 1024
"""Layer shapes (field 19) and KV section layers (models have at most a few hundred)."""
MAX_EXTRA = 1024
"""Entries of the ``extra`` map (field 14)."""
MAX_DIMS = 8
"""Dimensions of ``tensor_shape`` (field 9)."""

TENSOR_SHAPE, EXTRA, LAYERS, MAC = 9, 14, 19, 23
_LIMITS = {EXTRA: ("extra entries", MAX_EXTRA), LAYERS: ("layer shapes", MAX_LAYERS)}
_HIGH_BYTES = bytes(range(0x80, 0x100))


@dataclass(frozen=True)
class MetadataScan:
    """What the walk found: the byte offset where the ``mac`` field starts (or the length of
    the metadata when there is none) and the MAC itself (empty when unsigned)."""

    mac_start: int
    mac: bytes


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(offset, min(offset + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise DecodeError(f"metadata has a truncated or overlong varint at byte {offset}")


def scan_metadata(data: bytes) -> MetadataScan:
    """Walk the top-level fields of ``data`` (serialized ``Metadata``) within the caps."""
    counts: dict[int, int] = {}
    dims = 0
    offset = fields = 0
    mac_start, mac = len(data), b""
    while offset < len(data):
        fields += 1
        if fields > MAX_FIELDS:
            raise DecodeError(f"metadata has more than {MAX_FIELDS} fields")
        if mac:
            raise DecodeError("the mac extension (field 23) must be the last metadata field")
        start = offset
        tag, offset = _varint(data, offset)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise DecodeError(f"metadata field number 0 at byte {start}")
        if wire_type == 0:
            _, offset = _varint(data, offset)
            end = offset
            dims += number == TENSOR_SHAPE
        elif wire_type in (1, 5):
            end = offset + (8 if wire_type == 1 else 4)
        elif wire_type == 2:
            length, offset = _varint(data, offset)
            end = offset + length
            if number == TENSOR_SHAPE and end <= len(data):  # packed: one varint per low byte
                dims += len(data[offset:end].translate(None, _HIGH_BYTES))
            if number == MAC:
                mac_start, mac = start, data[offset:end]
                if not mac:
                    raise DecodeError("the mac extension (field 23) is empty")
        else:
            raise DecodeError(f"metadata field {number} has unsupported wire type {wire_type}")
        if end > len(data):
            raise DecodeError(f"metadata field {number} runs past the end of the metadata")
        offset = end
        counts[number] = counts.get(number, 0) + 1
        if number in _LIMITS and counts[number] > _LIMITS[number][1]:
            name, limit = _LIMITS[number]
            raise DecodeError(f"metadata has more than {limit} {name}")
        if dims > MAX_DIMS:
            raise DecodeError(f"tensor_shape has more than {MAX_DIMS} dimensions")
    return MetadataScan(mac_start, mac)
