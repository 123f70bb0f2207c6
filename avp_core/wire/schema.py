"""The protobuf ``Metadata`` message, built from a descriptor at run time.

Building the descriptor in code (instead of shipping a generated ``*_pb2.py``) means there is
no generated-code version gate: the same module imports under every protobuf runtime from
5.29 to 7.x. Fields 1-15 match AVP v1 (the reference ``avp`` 0.6.2) number for number and
type for type, so bytes are interchangeable; our additions use field numbers >= 16, which
older decoders skip as unknown fields.

It lives in its own descriptor pool and proto package so it never clashes with another AVP
implementation loaded in the same process.
"""

from __future__ import annotations

import enum
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

_F = descriptor_pb2.FieldDescriptorProto


class PayloadType(enum.IntEnum):
    HIDDEN_STATE = 0
    KV_CACHE = 1
    EMBEDDING = 2


class DataType(enum.IntEnum):
    FLOAT32 = 0
    FLOAT16 = 1
    BFLOAT16 = 2
    INT8 = 3


class WireMode(enum.IntEnum):
    LATENT = 0
    JSON = 1


# (number, name, type, label, enum type name or None, proto3 optional)
_V1_FIELDS: tuple[tuple[int, str, int, int, str | None, bool], ...] = (
    (1, "session_id", _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
    (2, "source_agent_id", _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
    (3, "target_agent_id", _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
    (4, "model_id", _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
    (5, "hidden_dim", _F.TYPE_UINT32, _F.LABEL_OPTIONAL, None, False),
    (6, "num_layers", _F.TYPE_UINT32, _F.LABEL_OPTIONAL, None, False),
    (7, "payload_type", _F.TYPE_ENUM, _F.LABEL_OPTIONAL, "PayloadType", False),
    (8, "dtype", _F.TYPE_ENUM, _F.LABEL_OPTIONAL, "DataType", False),
    (9, "tensor_shape", _F.TYPE_UINT32, _F.LABEL_REPEATED, None, False),
    (10, "mode", _F.TYPE_ENUM, _F.LABEL_OPTIONAL, "CommunicationMode", False),
    (11, "compression", _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, True),
    (13, "avp_map_id", _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
    (15, "payload_checksum", _F.TYPE_UINT32, _F.LABEL_OPTIONAL, None, True),
)

# avp-suite extensions (numbers >= 16).
_EXTENSION_FIELDS: tuple[tuple[int, str, int, int, str | None, bool], ...] = (
    (16, "token_ids", _F.TYPE_UINT32, _F.LABEL_REPEATED, None, False),
    (17, "identity_json", _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, False),
    (18, "latent_steps", _F.TYPE_UINT32, _F.LABEL_OPTIONAL, None, False),
    (19, "layers", _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "LayerShape", False),
    (20, "text", _F.TYPE_STRING, _F.LABEL_OPTIONAL, None, True),
    (21, "created_at", _F.TYPE_DOUBLE, _F.LABEL_OPTIONAL, None, False),
    (22, "last_hidden", _F.TYPE_BYTES, _F.LABEL_OPTIONAL, None, False),
    (23, "mac", _F.TYPE_BYTES, _F.LABEL_OPTIONAL, None, False),
)

EXTENSION_NAMES = tuple(f[1] for f in _EXTENSION_FIELDS)
V1_NAMES = (*(f[1] for f in _V1_FIELDS), "extra")

_PACKAGE = "avp_suite.wire.v1"


def _add_field(
    message: Any,
    number: int,
    name: str,
    ftype: int,
    label: int,
    type_name: str | None,
    proto3_optional: bool,
) -> None:
    field = message.field.add(name=name, number=number, type=ftype, label=label, json_name=name)
    if type_name:
        field.type_name = f".{_PACKAGE}.{type_name}"
    if proto3_optional:
        field.proto3_optional = True
        field.oneof_index = len(message.oneof_decl)
        message.oneof_decl.add(name=f"_{name}")


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="avp_suite/wire/v1.proto", package=_PACKAGE, syntax="proto3"
    )
    for enum_name, members in (
        ("PayloadType", PayloadType),
        ("DataType", DataType),
        ("CommunicationMode", {"LATENT": 0, "JSON_MODE": 1}),
    ):
        enum_proto = proto.enum_type.add(name=enum_name)
        items = (
            members.items() if isinstance(members, dict) else ((m.name, m.value) for m in members)
        )
        for value_name, number in items:
            # Enum values are scoped to the package in proto3, so prefix them to stay unique.
            enum_proto.value.add(name=f"{enum_name.upper()}_{value_name}", number=number)

    layer = proto.message_type.add(name="LayerShape")
    for number, name in enumerate(("num_kv_heads", "seq_len", "key_dim", "value_dim"), start=1):
        layer.field.add(
            name=name, number=number, type=_F.TYPE_UINT32, label=_F.LABEL_OPTIONAL, json_name=name
        )

    metadata = proto.message_type.add(name="Metadata")
    metadata.reserved_range.add(start=12, end=13)
    entry = metadata.nested_type.add(name="ExtraEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    for spec in _V1_FIELDS + _EXTENSION_FIELDS:
        if spec[0] == 15:  # declaration order as in AVP v1: the extra map (14) comes first
            metadata.field.add(
                name="extra",
                number=14,
                type=_F.TYPE_MESSAGE,
                label=_F.LABEL_REPEATED,
                type_name=f".{_PACKAGE}.Metadata.ExtraEntry",
                json_name="extra",
            )
        _add_field(metadata, *spec)
    return proto


def _build() -> tuple[Any, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    metadata = pool.FindMessageTypeByName(f"{_PACKAGE}.Metadata")
    layer = pool.FindMessageTypeByName(f"{_PACKAGE}.LayerShape")
    return GetMessageClass(metadata), GetMessageClass(layer)


MetadataProto, LayerShapeProto = _build()
