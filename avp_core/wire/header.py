"""The 12-byte AVP v1 header: magic, version, flags, payload and metadata lengths."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import DecodeError

MAGIC = b"AV"
VERSION = 0x01
FLAG_COMPRESSED = 0x01
FLAG_HAS_MAP = 0x02
FLAG_KV_CACHE = 0x04
KNOWN_FLAGS = FLAG_COMPRESSED | FLAG_HAS_MAP | FLAG_KV_CACHE

_HEADER = struct.Struct("<2sBBII")
HEADER_SIZE = _HEADER.size


@dataclass(frozen=True)
class Header:
    """Parsed header. ``payload_length`` counts metadata + tensor bytes as sent."""

    flags: int
    payload_length: int
    metadata_length: int
    version: int = VERSION

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_COMPRESSED)

    @property
    def has_map(self) -> bool:
        return bool(self.flags & FLAG_HAS_MAP)

    @property
    def kv_cache(self) -> bool:
        return bool(self.flags & FLAG_KV_CACHE)

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC, self.version, self.flags, self.payload_length, self.metadata_length
        )


def unpack_header(data: memoryview) -> Header:
    """Parse and check the header against the length of ``data`` (the whole message)."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(
            f"truncated message: {len(data)} bytes, the header alone is {HEADER_SIZE}"
        )
    magic, version, flags, payload_length, metadata_length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError(f"not an AVP message: magic {bytes(magic)!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise DecodeError(
            f"unsupported AVP version {version}; this decoder reads version {VERSION}"
        )
    if flags & ~KNOWN_FLAGS:
        raise DecodeError(f"unknown header flags {flags:#04x} (known: {KNOWN_FLAGS:#04x})")
    available = len(data) - HEADER_SIZE
    if payload_length > available:
        raise DecodeError(
            f"truncated message: header declares {payload_length} payload bytes, "
            f"{available} present"
        )
    if payload_length < available:
        raise DecodeError(
            f"{available - payload_length} trailing bytes after the declared payload "
            f"of {payload_length} bytes"
        )
    if metadata_length > payload_length:
        raise DecodeError(
            f"metadata length {metadata_length} exceeds the payload length {payload_length}"
        )
    return Header(flags=flags, payload_length=payload_length, metadata_length=metadata_length)
