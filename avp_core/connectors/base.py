"""The connector interface adapters depend on, and the result types every connector returns.

A connector runs one model for agents: it renders chat messages into token ids, generates
while reusing KV from compatible :class:`~avp_core.AVPContext` s, and reports what each call
computed. :class:`~avp_core.connectors.hf.HuggingFaceConnector` implements it for Hugging Face
models; another engine (llama.cpp's state API, vLLM's KV connector) implements the same
methods, and every adapter works with it unchanged. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypedDict, runtime_checkable

from ..errors import InvalidRequestError
from .chat import Messages

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..context import AVPContext
    from ..handshake import Handshake
    from ..identity import ModelIdentity
    from ..reuse import SegmentReuse
    from ..store import ContextStore
    from ..tools import InvalidToolCall, ToolCall, ToolChoice

Layout = Literal["shared", "handoff"]
"""``shared``: the messages are the whole conversation, KV reused for the common token prefix
(exact). ``handoff``: the messages are the next turns after the context, whose whole KV is
reused (the receiver reads a different prompt than the text path)."""

LAYOUTS: tuple[Layout, ...] = ("shared", "handoff")


@dataclass(frozen=True)
class GenerationOptions:
    """How a reply is decoded: the options every adapter takes, checked once, here.

    ``temperature=0`` is greedy (``top_p`` and ``seed`` then do nothing); ``stop`` strings
    end the reply (not included); ``ignore_eos`` keeps generating past the end-of-sequence
    token (fixed-length benchmark answers). Invalid values raise
    :class:`~avp_core.errors.InvalidRequestError`.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False

    NAMES: ClassVar[tuple[str, ...]] = (
        "max_new_tokens", "temperature", "top_p", "stop", "seed", "ignore_eos"
    )  # fmt: skip

    def __post_init__(self) -> None:
        stop = self.stop
        stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
        if not all(isinstance(s, str) for s in stop):
            raise InvalidRequestError(f"stop takes strings, got {list(stop)!r}")
        object.__setattr__(self, "stop", tuple(s for s in stop if s))
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise InvalidRequestError(f"max_new_tokens must be an int, got {self.max_new_tokens!r}")
        if self.max_new_tokens < 1:
            raise InvalidRequestError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature >= 0:
            raise InvalidRequestError(
                f"temperature must be >= 0 (0 is greedy), got {self.temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise InvalidRequestError(f"top_p must be in (0, 1], got {self.top_p}")

    def updated(self, **changes: Any) -> GenerationOptions:
        """A copy with ``changes`` (checked: an unknown name raises InvalidRequestError)."""
        unknown = sorted(set(changes) - set(self.NAMES))
        if unknown:
            raise InvalidRequestError(
                f"unknown generation options {unknown}; valid: {list(self.NAMES)}"
            )
        return replace(self, **changes)

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`Connector.generate_stream`."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["stop"] = list(self.stop) or None
        return values


class GenerateOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`Connector.generate` (those of ``generate_stream``)."""

    context: AVPContext | None
    layout: Layout
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: Sequence[str] | None
    seed: int | None
    ignore_eos: bool
    source_agent: str
    keep_logits: bool
    segment_reuse: SegmentReuse | bool | None
    sources: Sequence[AVPContext]
    source_store: ContextStore | None
    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: ToolChoice


@dataclass(frozen=True)
class Usage:
    """Token counts and timings of one call."""

    prompt_tokens: int
    reused_tokens: int
    prefilled_tokens: int
    completion_tokens: int
    ttft_s: float
    total_s: float
    approx_reused_tokens: int = 0
    """Positions whose KV came from a segment computed under another prefix (approximate;
    only with segment reuse on). ``prompt = reused + approx_reused + prefilled``."""
    recomputed_tokens: int = 0
    """Positions a reused segment covered that were computed again (counted in prefilled)."""

    def to_dict(self) -> dict[str, float]:
        return dict(vars(self))


@dataclass(frozen=True)
class Generation:
    """Result of :meth:`Connector.generate`: the text, the context it leaves, what it cost."""

    text: str
    context: AVPContext
    usage: Usage
    handshake: Handshake | None
    token_ids: tuple[int, ...] = ()
    finish_reason: str = "length"
    first_logits: Any = field(default=None, repr=False)
    """The first generated position's logits (a float32 tensor) when the call asked for them
    (``keep_logits=True``), for equivalence checks; else None."""
    notes: tuple[str, ...] = ()
    """Why reuse was less than asked (segment reuse fell back to dense prefill, a source
    came from another model...), in words."""
    tool_calls: tuple[ToolCall, ...] = ()
    """The valid tool calls in the reply (only when the call passed ``tools``)."""
    invalid_tool_calls: tuple[InvalidToolCall, ...] = ()
    """Blocks that looked like tool calls but could not be used, with the reason."""
    content: str | None = None
    """The reply without its valid tool-call blocks (None: same as ``text``)."""

    @property
    def reply(self) -> str:
        """The text to show: ``content`` when tools were passed, else ``text``."""
        return self.text if self.content is None else self.content


@dataclass
class Stats:
    """Cumulative counters over a connector's calls."""

    calls: int = 0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    prefilled_tokens: int = 0
    completion_tokens: int = 0
    approx_reused_tokens: int = 0


@runtime_checkable
class Connector(Protocol):
    """What an adapter needs from a model backend."""

    identity: ModelIdentity

    @property
    def context_window(self) -> int:
        """Positions the model can attend to (0 when unknown)."""
        ...

    @property
    def stats(self) -> Stats: ...

    def record(self) -> AbstractContextManager[list[Usage]]:
        """Collect the :class:`Usage` of every call made inside the block."""
        ...

    def prompt_ids(
        self, messages: Messages, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> list[int]:
        """Token ids of the rendered conversation (and tools), generation prompt included."""
        ...

    def count_tokens(
        self, messages: Messages, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int: ...

    def check_context(self, context: AVPContext) -> Handshake:
        """Whether this model may reuse ``context`` (LATENT) or must read its text."""
        ...

    def generate(self, messages: Messages, **options: Unpack[GenerateOptions]) -> Generation:
        """The whole reply at once: :meth:`generate_stream`'s options, its last item."""
        ...

    def generate_stream(
        self,
        messages: Messages,
        *,
        context: AVPContext | None = None,
        layout: Layout = "shared",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        ignore_eos: bool = False,
        source_agent: str = "",
        keep_logits: bool = False,
        segment_reuse: SegmentReuse | bool | None = None,
        sources: Sequence[AVPContext] = (),
        source_store: ContextStore | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> Iterator[str | Generation]:
        """Text chunks as they are decoded, then the :class:`Generation`.

        With ``tools`` (OpenAI-style schemas) the template shows them to the model, the chunks
        hold back tool-call blocks and the Generation carries the parsed calls.

        With ``segment_reuse`` on (shared layout), runs of the prompt found in ``context``,
        ``sources`` or ``source_store`` are reused approximately at any position."""
        ...

    def think(
        self,
        messages: Messages,
        *,
        steps: int,
        context: AVPContext | None = None,
        layout: Layout = "shared",
        source_agent: str = "",
    ) -> AVPContext:
        """Prefill, then take ``steps`` latent steps (approximate); the grown context."""
        ...
