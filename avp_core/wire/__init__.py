"""AVP v1 wire codec: ``encode_kv_cache``, ``encode_hidden_state``, ``decode``.

See docs/spec.md for the byte layout. torch is imported only when tensors are touched.
"""

from .codec import (
    DEFAULT_MAX_BYTES,
    Message,
    Metadata,
    decode,
    encode_hidden_state,
    encode_kv_cache,
    write_kv_cache,
)
from .header import (
    FLAG_COMPRESSED,
    FLAG_HAS_MAP,
    FLAG_KV_CACHE,
    HEADER_SIZE,
    MAGIC,
    VERSION,
    Header,
)
from .schema import DataType, PayloadType, WireMode
from .tensors import LayerShape

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FLAG_COMPRESSED",
    "FLAG_HAS_MAP",
    "FLAG_KV_CACHE",
    "HEADER_SIZE",
    "MAGIC",
    "VERSION",
    "DataType",
    "Header",
    "LayerShape",
    "Message",
    "Metadata",
    "PayloadType",
    "WireMode",
    "decode",
    "encode_hidden_state",
    "encode_kv_cache",
    "write_kv_cache",
]
