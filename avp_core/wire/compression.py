"""zstd compression of the tensor section, with decompression bounded before allocation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import DecodeError, EncodeError, MissingDependencyError

LEVELS = (1, 3, 19)


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - zstandard is a base dependency
        raise MissingDependencyError("zstandard") from exc
    return zstandard


def check_level(level: int | None) -> int | None:
    if level is None or level == 0:
        return None
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 22:
        raise EncodeError(
            f"compression must be None or a zstd level 1-22 (1, 3, 19 in AVP); got {level!r}"
        )
    return level


def compress_chunks(chunks: Iterable[memoryview], total: int, level: int) -> bytes:
    """Compress ``chunks`` (``total`` bytes) into one zstd frame that records its content size."""
    compressor = (
        _zstd().ZstdCompressor(level=level, write_content_size=True).compressobj(size=total)
    )
    parts = [compressor.compress(chunk) for chunk in chunks]
    parts.append(compressor.flush())
    return b"".join(parts)


def decompress(data: memoryview, limit: int) -> bytes:
    """Decompress one zstd frame, refusing output larger than ``limit`` before allocating it."""
    zstd = _zstd()
    try:
        size = zstd.frame_content_size(data)
    except zstd.ZstdError as exc:
        raise DecodeError(f"compressed section is not a zstd frame: {exc}") from exc
    if size < 0:
        raise DecodeError(
            "zstd frame does not record its content size; AVP requires it "
            "(zstandard: ZstdCompressor(write_content_size=True))"
        )
    if size > limit:
        raise DecodeError(
            f"zstd frame of {len(data)} bytes would expand to {size}, over the limit of "
            f"{limit} (decode's max_bytes, and max_expansion times the compressed size); "
            "pass larger limits to decode() if the sender is trusted"
        )
    try:
        return zstd.ZstdDecompressor().decompress(
            data, max_output_size=max(size, 1), allow_extra_data=False
        )
    except zstd.ZstdError as exc:
        raise DecodeError(f"corrupt zstd section: {exc}") from exc
