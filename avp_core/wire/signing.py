"""Opt-in authentication: an HMAC-SHA256 over a message's flags, metadata and tensor section.

The MAC travels in metadata extension field 23 (``mac``, bytes), written as the last field.
It covers a domain tag, the header flags, the metadata bytes before field 23 (with their
length) and the tensor section exactly as sent (compressed or not), so a receiver checks it
before parsing the metadata or decompressing anything. Unsigned messages are byte-for-byte
AVP v1; decoders that do not know field 23 skip it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterable

from ..errors import AuthenticationError, InvalidRequestError

KEY_ENV = "AVP_SUITE_KEY"
"""Environment variable holding the default key of :meth:`AVPContext.to_bytes` and
:meth:`AVPContext.from_bytes` (and every adapter that stores contexts) when none is passed."""
MIN_KEY_BYTES = 16
MAC_SIZE = 32
_DOMAIN = b"AVP1-HMAC-SHA256"
_MAC_TAG = bytes([23 << 3 | 2, 0x01])  # field 23, length-delimited (a two-byte varint tag)

Key = bytes | str


def coerce_key(key: Key | None) -> bytes | None:
    """``key`` as bytes (text is UTF-8 encoded), checked for length; None stays None."""
    if key is None:
        return None
    raw = key.encode() if isinstance(key, str) else key
    if not isinstance(raw, bytes) or len(raw) < MIN_KEY_BYTES:
        raise InvalidRequestError(
            f"an AVP key must be bytes or text of at least {MIN_KEY_BYTES} bytes; "
            "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return raw


def default_key(key: Key | None = None) -> bytes | None:
    """``key`` if given, else the key in ``$AVP_SUITE_KEY``, else None (unsigned)."""
    return coerce_key(key if key is not None else os.environ.get(KEY_ENV) or None)


def mac(
    key: bytes, flags: int, metadata: bytes | memoryview, section: Iterable[memoryview]
) -> bytes:
    """The HMAC-SHA256 of a message: its flags, metadata (before field 23) and the tensor
    section as sent, given as one or more buffers (hashed in place, never joined)."""
    digest = hmac.new(key, _DOMAIN, hashlib.sha256)
    digest.update(struct.pack("<BQ", flags, len(metadata)))
    digest.update(metadata)
    for chunk in section:
        digest.update(chunk)
    return digest.digest()


def mac_field(value: bytes) -> bytes:
    """The serialized metadata field 23 holding ``value`` (appended after the other fields)."""
    return _MAC_TAG + bytes([len(value)]) + value


def verify(key: bytes, sent: bytes, flags: int, metadata: memoryview, section: memoryview) -> None:
    """Raise :class:`AuthenticationError` unless ``sent`` is the MAC of the message."""
    if not sent:
        raise AuthenticationError(
            "message is not signed, but this receiver requires signed contexts (a key is "
            "configured); sign on the sender with the same key"
        )
    if not hmac.compare_digest(sent, mac(key, flags, metadata, [section])):
        raise AuthenticationError(
            "message signature does not match: it was changed after signing or signed "
            "with another key"
        )
