"""AVPSerializer: LangGraph checkpoints that keep contexts, by reference to a context store.

Contexts found in a checkpoint (carried by AI messages, or stored as values such as the
``contexts`` channel) are saved to a :class:`~avp_core.ContextStore` (each only once, and
each as its new positions on top of the context it continues) and the checkpoint holds small
references to them next to the rest of the value, which :class:`JsonPlusSerializer` encodes
as usual. Loading puts the references back on their messages, and a context is read from the
store only when a model asks for it, so a graph resumed in another process reuses them.
With ``inline=True`` the KV bytes go into the checkpoint itself instead. Nothing is pickled.

Loading is strict: a checkpoint value may name only allow-listed types (see
:data:`SAFE_TYPES`; add yours with ``allowed_types``), because LangGraph rebuilds a named type
by importing and calling it, so whoever can write the checkpoint database could otherwise run
code in every process that reads it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import ormsgpack
from langchain_core import messages as lc_messages
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from avp_core.context import AVPContext
from avp_core.errors import DecodeError, InvalidRequestError, StoreError
from avp_core.store import ContextRef, ContextStore, default_store
from avp_core.wire.signing import Key

from .messages import METADATA_KEY, ContextHandle, context_of, handle_of

logger = logging.getLogger("avp_langgraph")

TYPE = "avp"
"""The type tag of values that hold contexts (``dumps_typed`` returns ``(TYPE, bytes)``)."""
MAGIC = b"AVPCKPT1"  # followed by contexts as AVP messages (inline=True)
REF_MAGIC = b"AVPCKREF"  # followed by contexts as content keys (32 bytes each)
_MARKER = "__avp_context__"
_PLAIN_TYPES = ("null", "bytes", "bytearray", "msgpack")
_DATETIME = ("datetime", "date", "time", "timedelta", "timezone")
_IP = ("Address", "Interface", "Network")

SAFE_TYPES: frozenset[tuple[str, ...]] = frozenset(
    {("datetime", name) for name in _DATETIME}
    | {("datetime", name, "fromisoformat") for name in ("datetime", "date", "time")}
    | {("ipaddress", f"IPv{v}{kind}") for v in (4, 6) for kind in _IP}
    | {(mod, name) for mod in ("pathlib", "pathlib._local") for name in ("Path", "PosixPath")}
    | {("uuid", "UUID"), ("decimal", "Decimal"), ("zoneinfo", "ZoneInfo")}
    | {("builtins", "set"), ("builtins", "frozenset"), ("collections", "deque")}
    | {("langgraph.types", name) for name in ("Send", "Interrupt", "Command")}
    | {("langchain_core.documents.base", "Document")}
    | {
        (cls.__module__, cls.__name__)
        for cls in (getattr(lc_messages, name, None) for name in lc_messages.__all__)
        if isinstance(cls, type) and issubclass(cls, BaseMessage)
    }
)
"""Types (``(module, name)``) and methods (``(module, name, method)``) a checkpoint value
may name by default: standard-library values, LangGraph's Send/Interrupt/Command, LangChain
messages and documents. Constructing them runs no code of the checkpoint's choosing."""

TypeName = type | tuple[str, ...]


class AVPSerializer(JsonPlusSerializer):
    """A :class:`JsonPlusSerializer` that keeps contexts by reference to a context store and
    loads only allow-listed types.

    - ``store``: where contexts are saved: a :class:`~avp_core.ContextStore`, or a store URI
      (a directory path, ``sqlite:PATH``, ``postgresql://...``, ``redis://...``). Default:
      this process's memory store (:func:`~avp_core.store.default_store`), so contexts do not
      outlive the process; give a persistent store to resume threads in another process.
      A store that is down or has lost a context costs reuse, never a checkpoint: the
      message keeps its text, and a warning says what happened.
    - ``inline``: put each context's KV bytes into the checkpoint instead (every checkpoint
      then holds every context of the conversation again).
    - ``compression``: ``None`` or a zstd level (1-22) for inline KV bytes.
    - ``key``: sign inline contexts and load only contexts signed with it (default:
      ``$AVP_SUITE_KEY`` when set); a store given as a URI signs its records with it too.
    - ``allowed_types``: your own types (classes or ``(module, name)``) that checkpoints may
      hold besides :data:`SAFE_TYPES`, such as a pydantic state model; ``True`` turns the
      check off (only for a database nobody else can write).
    - ``on_invalid_context``: ``"text"`` (default) drops a context that does not decode or
      verify, with a warning, so its message keeps only its text; ``"raise"`` raises
      :class:`~avp_core.errors.DecodeError`.

    Other keyword arguments go to :class:`JsonPlusSerializer`. Values without contexts are
    stored exactly as :class:`JsonPlusSerializer` stores them.
    """

    def __init__(
        self,
        *,
        store: ContextStore | str | None = None,
        inline: bool = False,
        compression: int | None = None,
        key: Key | None = None,
        allowed_types: Iterable[TypeName] | Literal[True] = (),
        on_invalid_context: Literal["text", "raise"] = "text",
        **kwargs: Any,
    ) -> None:
        if on_invalid_context not in ("text", "raise"):
            raise InvalidRequestError(
                f"on_invalid_context must be 'text' or 'raise', got {on_invalid_context!r}"
            )
        allowed: frozenset[tuple[str, ...]] | Literal[True] = True
        if allowed_types is not True:
            allowed = SAFE_TYPES | _type_names(allowed_types)
            if "allowed_msgpack_modules" in inspect.signature(JsonPlusSerializer).parameters:
                # newer LangGraph checks types itself; give it the same list, so it stays quiet
                kwargs.setdefault("allowed_msgpack_modules", sorted(n[:2] for n in allowed))
        super().__init__(**kwargs)
        if isinstance(store, str):
            store = ContextStore(backend=store, key=key)
        self.store = store if store is not None else default_store()
        self.inline = inline
        self.compression = compression
        self.key = key
        self.allowed_types = allowed
        self.on_invalid_context = on_invalid_context
        self._collecting = threading.local()
        self._warned: OrderedDict[str, None] = OrderedDict()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        found: dict[str, AVPContext | ContextRef] = {}
        stripped = _strip(obj, found)
        if not found:
            return super().dumps_typed(obj)
        inner_type, data = super().dumps_typed(stripped)
        if self.inline:
            blobs = {}
            for key, item in found.items():
                context = self._load(item) if isinstance(item, ContextRef) else item
                if context is not None:
                    blobs[key] = context.to_bytes(compression=self.compression, key=self.key)
            return TYPE, _pack(MAGIC, inner_type, data, blobs)
        refs = {}
        for context_id, item in found.items():
            try:
                ref = item if isinstance(item, ContextRef) else self.store.save(item)
                refs[context_id] = bytes.fromhex(ref.key)  # 32 bytes: each checkpoint has them
            except StoreError as exc:  # no reference to bytes that were not stored
                self._warn_once(
                    context_id, f"was not saved ({exc}); the checkpoint keeps its text only"
                )
        return TYPE, _pack(REF_MAGIC, inner_type, data, refs)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, payload = data
        if type_ != TYPE:
            return self._loads_plain(type_, payload)
        magic, inner_type, inner, blobs = _unpack(payload)
        value = self._loads_plain(inner_type, inner)
        sources: dict[str, _Source] = {}
        if magic == MAGIC:  # inline: decoded now, handed back as they are
            for key, blob in blobs.items():
                context = self._context(key, blob)
                sources[key] = (functools.partial(_same, context), None)
            return _restore(value, sources)
        refs = {key: self._ref(key, blob) for key, blob in blobs.items()}
        seen = getattr(self._collecting, "refs", None)
        if seen is not None:  # listing references only: load nothing
            seen.update(ref for ref in refs.values() if ref is not None)
            return _restore(value, {})
        for key, ref in refs.items():
            loader = functools.partial(self._load, ref) if ref else functools.partial(_same, None)
            sources[key] = (loader, ref)
        return _restore(value, sources)

    @contextlib.contextmanager
    def references(self) -> Iterator[set[ContextRef]]:
        """Within this block, loading a checkpoint in this thread loads no context and adds
        the references it holds to the yielded set (see :func:`collect_garbage`)."""
        refs: set[ContextRef] = set()
        self._collecting.refs = refs
        try:
            yield refs
        finally:
            self._collecting.refs = None

    def _ref(self, context_id: str, blob: memoryview) -> ContextRef | None:
        if len(blob) != 32:
            return self._invalid(context_id, DecodeError("a context key has 32 bytes"))
        return ContextRef(bytes(blob).hex(), context_id, 0, store=self.store.backend.uri)

    def _load(self, ref: ContextRef) -> AVPContext | None:
        try:
            return self.store.load(ref)
        except (StoreError, DecodeError) as exc:
            return self._invalid(ref.context_id, exc)

    def _invalid(self, context_id: str, exc: Exception) -> Any:
        """Raise, or warn and return None (the message keeps its text)."""
        if self.on_invalid_context == "raise":
            if isinstance(exc, DecodeError):
                raise exc
            raise DecodeError(f"context {context_id[:8]} cannot be loaded: {exc}") from exc
        self._warn_once(context_id, f"dropped ({exc}); using its text")
        return None

    def _warn_once(self, context_id: str, what: str) -> None:
        """Log ``context <id> <what>`` once per context (every checkpoint repeats them)."""
        if context_id in self._warned:
            return
        self._warned[context_id] = None
        if len(self._warned) > 4096:
            self._warned.popitem(last=False)
        logger.warning("checkpoint context %s %s", context_id[:8], what)

    def _loads_plain(self, type_: str, payload: bytes) -> Any:
        if self.allowed_types is not True:
            if type_ not in _PLAIN_TYPES:
                raise DecodeError(
                    f"checkpoint value of type {type_[:40]!r}: AVPSerializer loads only "
                    f"{', '.join(_PLAIN_TYPES)} values (loading {type_} can run code); "
                    "pass allowed_types=True only if nobody else can write the database"
                )
            if type_ == "msgpack":
                _check_names(payload, self.allowed_types)
        return super().loads_typed((type_, payload))

    def _context(self, key: str, blob: memoryview) -> AVPContext | None:
        try:
            return AVPContext.from_bytes(blob, copy=True, key=self.key)
        except DecodeError as exc:
            return self._invalid(key, exc)


def _type_names(types: Iterable[TypeName]) -> frozenset[tuple[str, ...]]:
    names: set[tuple[str, ...]] = set()
    for item in types:
        if isinstance(item, type):
            names.add((item.__module__, item.__name__))
        elif (
            isinstance(item, tuple)
            and len(item) in (2, 3)
            and all(isinstance(part, str) for part in item)
        ):
            names.add(item)
        else:
            raise InvalidRequestError(
                f"allowed_types takes classes or (module, name) tuples, got {item!r}"
            )
    return frozenset(names)


def _check_names(payload: bytes, allowed: frozenset[tuple[str, ...]]) -> None:
    """Raise DecodeError if the msgpack ``payload`` names a type (at any depth) that is not
    in ``allowed``; nothing is constructed here."""
    problems: list[str] = []  # ormsgpack does not chain a hook's exception: keep its message

    def hook(code: int, data: bytes) -> None:
        inner = ormsgpack.unpackb(data, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
        if code not in (0, 1, 2, 3, 4, 5):  # LangGraph's constructor, method, pydantic codes
            return
        ok = isinstance(inner, (list, tuple)) and len(inner) >= 3
        name = tuple(inner[:2]) + (tuple(inner[3:4]) if ok and code == 3 else ())
        if not ok or not all(isinstance(part, str) for part in name):
            problems.append(f"malformed checkpoint extension (code {code})")
        elif name not in allowed:
            problems.append(
                f"checkpoint names {'.'.join(name)}, which AVPSerializer does not load "
                "(rebuilding a named type can run code). If the type is yours, allow it: "
                f"AVPSerializer(allowed_types=[{name[1]}])"
            )
        if problems:
            raise DecodeError(problems[0])

    try:
        ormsgpack.unpackb(payload, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
    except Exception as exc:  # ormsgpack's own errors, or a hook's it replaced
        reason = problems[0] if problems else f"checkpoint value is not valid msgpack: {exc}"
        raise DecodeError(reason) from None


def _strip(value: Any, found: dict[str, AVPContext | ContextRef]) -> Any:
    """Collect contexts; return ``value`` with bare contexts replaced by markers (a new
    container only where something was replaced)."""
    if isinstance(value, AVPContext):
        found[value.context_id] = value
        return {_MARKER: value.context_id}
    if isinstance(value, BaseMessage):
        handle = handle_of(value)
        if isinstance(handle, ContextHandle) and handle.pending and handle.ref is not None:
            found[handle.ref.context_id] = handle.ref  # saved already: keep the reference
        elif (context := context_of(value)) is not None:
            found[context.context_id] = context
        return value
    if isinstance(value, dict):
        items = {key: _strip(item, found) for key, item in value.items()}
        changed = any(items[key] is not value[key] for key in value)
        return items if changed else value
    if isinstance(value, (list, tuple)):
        items_list = [_strip(item, found) for item in value]
        if all(new is old for new, old in zip(items_list, value)):
            return value
        return type(value)(items_list) if isinstance(value, list) else tuple(items_list)
    return value


_Source = tuple[Callable[[], AVPContext | None], ContextRef | None]
"""How a context of a checkpoint comes back: its loader, and its reference (None inline)."""


def _restore(value: Any, sources: dict[str, _Source]) -> Any:
    """Put contexts back: a marker becomes its context (None for one dropped), a message
    gets a handle that gives its context on first use."""
    if isinstance(value, BaseMessage):
        handle = handle_of(value)
        if handle is not None and (source := sources.get(handle["context_id"])) is not None:
            loader, ref = source
            restored = ContextHandle(dict(handle), loader=loader, ref=ref)
            value.response_metadata[METADATA_KEY] = restored
        return value
    if isinstance(value, dict):
        if set(value) == {_MARKER} and value[_MARKER] in sources:
            return sources[value[_MARKER]][0]()
        for key, item in value.items():
            value[key] = _restore(item, sources)
        return value
    if isinstance(value, list):
        value[:] = [_restore(item, sources) for item in value]
        return value
    if isinstance(value, tuple):
        return tuple(_restore(item, sources) for item in value)
    return value


def _same(context: AVPContext | None) -> AVPContext | None:
    return context


def _pack(magic: bytes, inner_type: str, data: bytes, blobs: dict[str, bytes]) -> bytes:
    """``magic``, the inner (type, bytes), then each context id and its AVP message
    (``MAGIC``) or the content key of its record in the store (``REF_MAGIC``)."""
    kind = inner_type.encode()
    parts = [magic, struct.pack("<H", len(kind)), kind, struct.pack("<Q", len(data)), data]
    parts.append(struct.pack("<I", len(blobs)))
    for key, blob in blobs.items():
        raw = key.encode()
        parts += [struct.pack("<H", len(raw)), raw, struct.pack("<Q", len(blob)), blob]
    return b"".join(parts)


def _unpack(payload: bytes) -> tuple[bytes, str, bytes, dict[str, memoryview]]:
    view = memoryview(payload)
    magic = bytes(view[: len(MAGIC)])
    if magic not in (MAGIC, REF_MAGIC):
        raise DecodeError("not an AVPSerializer checkpoint value (bad magic)")
    offset = len(MAGIC)

    def take(size: int) -> memoryview:
        nonlocal offset
        if size > len(view) - offset:
            raise DecodeError("truncated AVPSerializer checkpoint value")
        chunk = view[offset : offset + size]
        offset += size
        return chunk

    def number(fmt: str) -> int:
        return int(struct.unpack(fmt, take(struct.calcsize(fmt)))[0])

    def text() -> str:
        try:
            return bytes(take(number("<H"))).decode()
        except UnicodeDecodeError as exc:
            raise DecodeError(f"AVPSerializer checkpoint value has a bad name: {exc}") from None

    inner_type = text()
    inner = bytes(take(number("<Q")))
    blobs: dict[str, memoryview] = {}
    for _ in range(number("<I")):
        key = text()
        blobs[key] = take(number("<Q"))
    if offset != len(view):
        raise DecodeError("trailing bytes after an AVPSerializer checkpoint value")
    return magic, inner_type, inner, blobs
