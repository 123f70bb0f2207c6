"""HuggingFaceConnector: generation with exact KV reuse from an AVPContext.

One call = render the messages with the chat template, take what a compatible context
already computed (the longest common token prefix in the shared layout, the whole context in
the handoff layout), prefill only the rest, then decode. Contexts are never written: each
call wraps their tensors in a new cache object that grows by concatenation.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from .. import tools as _tools
from ..context import LATENT, AVPContext, common_prefix_length, is_trusted, mark_trusted
from ..errors import (
    ContextWindowError,
    IncompatibleContextError,
    InvalidRequestError,
    ModelNotFoundError,
)
from ..handshake import Handshake, Mode, resolve
from ..identity import ModelIdentity
from ..reuse import Segment, SegmentIndex, SegmentReuse, find_segments
from ..reuse.anchors import AnchorPool
from ..reuse.blend import blended_prefill
from ..reuse.rope import KeyShifter
from ..store import ContextStore
from ..tools import ToolChoice
from . import chat, verify
from .base import LAYOUTS, GenerateOptions, Generation, GenerationOptions, Layout, Stats, Usage
from .chat import Messages
from .hf_identity import extract_model_identity

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Generation", "HuggingFaceConnector", "Stats", "Usage"]

logger = logging.getLogger("avp_core")

LogitsProcessor = Callable[[Sequence[int], Sequence[int], torch.Tensor], torch.Tensor]
"""``(prompt_ids, produced_ids, logits) -> logits`` for the next token."""


@dataclass
class _Plan:
    """What to compute: the full position sequence, how much is reused exactly, the forked
    cache, and the segments reused approximately after that."""

    sequence: list[int]
    reused: int
    cache: DynamicCache
    handshake: Handshake | None
    segments: list[Segment] = field(default_factory=list)
    settings: SegmentReuse | None = None
    notes: list[str] = field(default_factory=list)


class HuggingFaceConnector:
    """Runs a Hugging Face causal LM for agents, reusing KV from compatible contexts.

    Implements :class:`~avp_core.connectors.base.Connector`.
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, model_id: str = "", spot_check: bool = True
    ) -> None:
        if getattr(model, "training", False):
            logger.warning("model is in training mode (dropout on); outputs will not be exact")
        self.model = model
        self.tokenizer = tokenizer
        self.identity: ModelIdentity = extract_model_identity(model, tokenizer, model_id=model_id)
        self._stats = Stats()
        self._stats_lock = threading.Lock()
        self._recorders: list[list[Usage]] = []
        self._eos_ids = _eos_ids(model, tokenizer)
        self._reusable = all(type(layer) is DynamicLayer for layer in self._new_cache().layers)
        # transformers 5.24 renamed forward's `past_key_values` to `cache` (the old name goes
        # in 5.40): pass the cache under whichever name this model's forward takes
        forward = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"
        self._shifter, self._unshiftable = KeyShifter.for_model(model)
        self.anchors = AnchorPool()
        """Offsets observed for segment reuse (KVCOMM anchors), shared by all calls."""
        self.spot_check = spot_check
        """Before reusing a context this process did not compute (decoded from bytes, built by
        hand), recompute one random position of it and compare (see
        :mod:`avp_core.connectors.verify`); shapes, dtype and finiteness are always checked."""
        self._layer_shapes: list[tuple[int, int, int]] | None = None
        self._rejected: weakref.WeakKeyDictionary[AVPContext, str] = weakref.WeakKeyDictionary()
        self._verify_lock = threading.Lock()
        self.logits_processor: LogitsProcessor | None = None
        """Called before each token is chosen with ``(prompt_ids, produced_ids, logits)``;
        returns the logits to choose from (constrained decoding, or forcing a reply in tests:
        see :func:`avp_core.testing.scripted`)."""

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, *, device: str = "cpu", dtype: Any = None, **kwargs: Any
    ) -> HuggingFaceConnector:
        """Load a checkpoint (a directory, a Hub id, or a built-in model name such as
        ``tiny-qwen2``) with ``AutoModelForCausalLM`` and ``AutoTokenizer``."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .. import models

        name = str(name_or_path)
        models.check_name_or_path(name)
        path: str | Path = models.build(name) if name in models.NAMES else name
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            with models.quiet_progress():
                model: Any = AutoModelForCausalLM.from_pretrained(
                    str(path), dtype=dtype or "auto", **kwargs
                )
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"cannot load model {name!r}: {str(exc).rstrip('.')}. Pass a checkpoint "
                f"directory, a Hub id available offline, or a built-in name "
                f"({', '.join(models.NAMES)})"
            ) from exc
        model.to(device).eval()
        return cls(model, tokenizer, model_id=name if name in models.NAMES else "")

    # -- public API ------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def context_window(self) -> int:
        config = self.model.config.get_text_config()
        return int(getattr(config, "max_position_embeddings", 0) or 0)

    @property
    def stats(self) -> Stats:
        """Cumulative counters over all calls (a snapshot)."""
        with self._stats_lock:
            return Stats(**vars(self._stats))

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats = Stats()

    @contextmanager
    def record(self) -> Iterator[list[Usage]]:
        """Collect the :class:`Usage` of every call made inside the block (from any thread).

        >>> with connector.record() as calls:  # doctest: +SKIP
        ...     graph.invoke(state)
        >>> [u.ttft_s for u in calls]  # doctest: +SKIP
        """
        calls: list[Usage] = []
        with self._stats_lock:
            self._recorders.append(calls)
        try:
            yield calls
        finally:
            with self._stats_lock:
                self._recorders.remove(calls)

    def prompt_ids(
        self, messages: Messages, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> list[int]:
        """Token ids of the rendered conversation, generation prompt included (shared layout)."""
        schemas = _tools.normalize_tools(tools)
        return chat.render_ids(self.tokenizer, chat.normalize_messages(messages), schemas)

    def count_tokens(
        self, messages: Messages, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        """Tokens of the rendered conversation, generation prompt included."""
        return len(self.prompt_ids(messages, tools))

    def generate(self, messages: Messages, **options: Unpack[GenerateOptions]) -> Generation:
        """Generate a reply; see :meth:`generate_stream` for the options."""
        result = None
        for item in self.generate_stream(messages, **options):
            if isinstance(item, Generation):
                result = item
        assert result is not None
        return result

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
        """Yield text chunks as tokens are produced, then the :class:`Generation`.

        ``layout="shared"``: the messages are the whole conversation; KV is reused for the
        longest common token prefix with ``context``. ``layout="handoff"``: the messages are
        the next turns after ``context``, whose whole KV is reused. ``temperature=0`` is greedy.
        ``keep_logits=True`` keeps the first position's logits in ``Generation.first_logits``
        (a copy of the whole vocabulary's, so only when asked: for equivalence checks).

        ``segment_reuse`` (shared layout; approximate, opt-in): after the exact prefix, runs
        of the prompt that ``context``, ``sources`` or ``source_store`` computed under another
        prefix are reused at their new positions (see :class:`~avp_core.reuse.SegmentReuse`).

        ``tools`` (OpenAI-style function schemas) are rendered by the chat template (or the
        fallback of :mod:`avp_core.tools`); ``tool_choice`` ``required`` or a tool's name makes
        the reply open with a call. The chunks leave out tool-call blocks; the Generation has
        them parsed (``tool_calls``, ``invalid_tool_calls``) and ``content`` without them.
        """
        GenerationOptions(max_new_tokens, temperature, top_p, tuple(stop or ()), seed, ignore_eos)
        start = time.perf_counter()
        schemas = _tools.normalize_tools(tools)
        _tools.check_choice(tool_choice, schemas)
        if tool_choice == "none":
            schemas = []
        plan = self._plan(chat.normalize_messages(messages), context, layout, schemas)
        opening = _tools.response_prefix(tool_choice) if schemas else ""
        plan.sequence += chat.encode_text(self.tokenizer, opening) if opening else []
        max_new_tokens = min(max_new_tokens, self._room(len(plan.sequence), 1))
        settings = SegmentReuse.coerce(segment_reuse)
        if settings is not None:
            self._plan_segments(plan, settings, context, sources, source_store, layout)
        generator = None
        if temperature > 0:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed if seed is not None else torch.seed())
        stops = [s for s in (stop or []) if s]
        produced: list[int] = []
        emitted = ""
        ttft = 0.0
        finish = "length"
        approximate = recomputed = 0
        computed = len(plan.sequence) - plan.reused
        with torch.inference_mode():
            if plan.segments and plan.settings is not None and self._shifter is not None:
                blend = blended_prefill(
                    self.model,
                    plan.cache,
                    plan.sequence,
                    plan.reused,
                    plan.segments,
                    settings=plan.settings,
                    shifter=self._shifter,
                    anchors=self.anchors,
                    cache_arg=self._cache_arg,
                )
                logits, computed = blend.logits, blend.computed
                approximate, recomputed = blend.approximate, blend.recomputed
                plan.notes.extend(blend.notes)
            else:
                logits = self._forward(plan.sequence[plan.reused :], plan.cache)
            first_logits = logits.clone() if keep_logits else None
            holds = stops + ([_tools.OPEN] if schemas else [])
            while True:
                if self.logits_processor is not None:
                    logits = self.logits_processor(plan.sequence, produced, logits)
                token = _sample(logits, temperature, top_p, generator)
                produced.append(token)
                if len(produced) == 1:
                    ttft = time.perf_counter() - start
                text = opening + self.tokenizer.decode(produced, skip_special_tokens=True)
                cut = _stop_index(text, stops)
                if cut is not None:
                    finish, text = "stop", text[:cut]
                shown = _before_calls(text) if schemas else text
                chunk = shown[len(emitted) : _safe_end(shown, holds, finish == "stop")]
                if chunk:
                    emitted += chunk
                    yield chunk
                if finish == "stop" or (token in self._eos_ids and not ignore_eos):
                    finish = "stop"
                    break
                if len(produced) >= max_new_tokens:
                    break
                logits = self._forward([token], plan.cache)
            final = opening + self.tokenizer.decode(produced, skip_special_tokens=True)
            cut = _stop_index(final, stops)
            if cut is None:
                covered = len(produced)
                self._forward([produced[-1]], plan.cache, logits=False)  # cover the last token
            else:  # the context ends before the tokens that spell the stop string
                final = final[:cut]
                covered = self._tokens_before(produced, cut - len(opening))
        sequence = plan.sequence + produced[:covered]
        reply = _tools.parse_reply(final, schemas, seed=sequence) if schemas else None
        shown = reply.content if reply is not None else final
        if shown.startswith(emitted) and shown[len(emitted) :]:
            yield shown[len(emitted) :]
        new_context = self._context(plan.cache, sequence, text=final, source_agent=source_agent)
        usage = Usage(
            prompt_tokens=len(plan.sequence),
            reused_tokens=plan.reused,
            prefilled_tokens=computed,
            completion_tokens=len(produced),
            ttft_s=ttft,
            total_s=time.perf_counter() - start,
            approx_reused_tokens=approximate,
            recomputed_tokens=recomputed,
        )
        self._record(usage)
        for note in plan.notes:
            logger.info("segment reuse: %s", note)
        yield Generation(
            final,
            new_context,
            usage,
            plan.handshake,
            tuple(produced),
            finish,
            first_logits,
            tuple(plan.notes),
            reply.tool_calls if reply is not None else (),
            reply.invalid_tool_calls if reply is not None else (),
            reply.content if reply is not None else None,
        )

    def think(
        self,
        messages: Messages,
        *,
        steps: int,
        context: AVPContext | None = None,
        layout: Layout = "shared",
        source_agent: str = "",
    ) -> AVPContext:
        """Prefill ``messages`` then take ``steps`` latent steps (approximate; see avp_core.latent).

        Each step feeds the realigned last hidden state back as an input embedding, so the
        returned context grows by exactly ``steps`` positions that have no token id.
        """
        from ..latent import realignment

        if steps < 0:
            raise InvalidRequestError(f"steps must be >= 0, got {steps}")
        start = time.perf_counter()
        plan = self._plan(chat.normalize_messages(messages), context, layout)
        self._room(len(plan.sequence), steps)
        align = realignment(self.model)
        with torch.inference_mode():
            hidden = self._forward(plan.sequence[plan.reused :], plan.cache, hidden=True)
            for _ in range(steps):
                embeds = align.apply(hidden).to(self.dtype).reshape(1, 1, -1)
                hidden = self._forward(None, plan.cache, hidden=True, embeds=embeds)
        sequence = plan.sequence + [LATENT] * steps
        self._record(
            Usage(
                len(plan.sequence),
                plan.reused,
                len(plan.sequence) - plan.reused,
                0,
                0.0,
                time.perf_counter() - start,
            )
        )
        return self._context(
            plan.cache,
            sequence,
            text=None,
            source_agent=source_agent,
            last_hidden=hidden.reshape(1, -1).clone(),
        )

    def check_context(self, context: AVPContext) -> Handshake:
        """The handshake between this connector's model and the context's producer.

        A context no connector in this process computed or checked is verified first (once);
        if its KV does not fit this model or fails the spot check, the handshake says so and
        callers use its text instead.
        """
        handshake = resolve(self.identity, context.identity)
        if handshake.latent and not self._reusable:
            return Handshake(
                Mode.JSON, "this model's cache type does not support exact reuse; using text"
            )
        if handshake.latent and not is_trusted(context):
            problem = self.verify_context(context)
            if problem is not None:
                return Handshake(Mode.JSON, f"context failed verification: {problem}; using text")
        return handshake

    def verify_context(self, context: AVPContext) -> str | None:
        """Check ``context``'s KV against this model (see :mod:`avp_core.connectors.verify`):
        None if it may be reused (it is then trusted), else why not (logged once)."""
        with self._verify_lock:
            if is_trusted(context):
                return None
            if context in self._rejected:
                return self._rejected[context]
            problem = verify.check_tensors(context, self._cache_shapes())
            if problem is None and self.spot_check:
                problem = verify.spot_check(context, self._fork, self._forward, self.dtype)
            if problem is None:
                mark_trusted(context)
                return None
            self._rejected[context] = problem
        logger.warning(
            "not reusing context %s (from %s): %s; using its text",
            context.context_id[:8],
            context.source_agent or "an unnamed agent",
            problem,
        )
        return problem

    # -- internals -------------------------------------------------------------------------

    def _plan(
        self,
        messages: list[dict[str, Any]],
        context: AVPContext | None,
        layout: Layout,
        tools: list[dict[str, Any]] | None = None,
    ) -> _Plan:
        if layout not in LAYOUTS:
            raise InvalidRequestError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if context is None:
            ids = chat.render_ids(self.tokenizer, messages, tools)
            return _Plan(ids, 0, self._new_cache(), None)
        handshake = self.check_context(context)
        if not handshake.latent:
            logger.info("not reusing context %s: %s", context.context_id[:8], handshake.reason)
            if layout == "handoff":
                if not context.text:
                    raise IncompatibleContextError(
                        f"cannot continue context {context.context_id[:8]} from "
                        f"{context.identity.short() if context.identity else 'an unknown model'}: "
                        f"{handshake.reason}, and it carries no text to fall back on. Run both "
                        "agents on the same model or pass the sender's text in the messages."
                    )
                messages = [{"role": "assistant", "content": context.text}, *messages]
            ids = chat.render_ids(self.tokenizer, messages, tools)
            return _Plan(ids, 0, self._new_cache(), handshake)
        if layout == "handoff":  # tools cannot come before the context: a turn after it
            shown = tools and _tools.instructions(tools) in self.tokenizer.decode(context.sequence)
            turns = chat.with_instructions(messages, tools) if tools and not shown else messages
            sequence = list(context.sequence)
            sequence += chat.continuation_ids(self.tokenizer, turns, context.sequence[-8:])
            reused = context.seq_len
        else:
            sequence = chat.render_ids(self.tokenizer, messages, tools)
            reused = min(common_prefix_length(context.sequence, sequence), len(sequence) - 1)
        return _Plan(sequence, reused, self._fork(context, reused), handshake)

    def _plan_segments(
        self,
        plan: _Plan,
        settings: SegmentReuse,
        context: AVPContext | None,
        sources: Sequence[AVPContext],
        store: ContextStore | None,
        layout: Layout,
    ) -> None:
        """Add to ``plan`` the best exact prefix among the sources, then the segments after
        it; or say in ``plan.notes`` why there are none."""
        if layout != "shared":
            plan.notes.append("segment reuse applies to the shared layout only")
            return
        if self._shifter is None:
            plan.notes.append(f"segment reuse off: {self._unshiftable}; dense prefill")
            return
        if self.context_window and len(plan.sequence) > self.context_window:
            plan.notes.append("the prompt exceeds the context window; dense prefill")
            return
        handshakes: dict[str, Handshake] = {}

        def compatible(candidate: AVPContext) -> bool:
            if candidate.context_id not in handshakes:
                handshake = handshakes[candidate.context_id] = self.check_context(candidate)
                if not handshake.latent:
                    plan.notes.append(
                        f"source {candidate.context_id[:8]} not reused: {handshake.reason}"
                    )
            return handshakes[candidate.context_id].latent

        given = [c for c in ([context] if context else []) + list(sources) if compatible(c)]
        for candidate in given:
            shared = common_prefix_length(candidate.sequence, plan.sequence)
            length = min(shared, len(plan.sequence) - 1)
            if length > plan.reused:
                plan.reused, plan.cache = length, self._fork(candidate, length)
                plan.handshake = handshakes[candidate.context_id]
        local = SegmentIndex(settings.chunk_tokens)
        for candidate in given:
            local.add(candidate)
        indexes = [local] + ([store.segment_index] if store is not None else [])
        plan.segments = find_segments(
            plan.sequence,
            indexes,
            start=plan.reused,
            end=len(plan.sequence) - 1,
            min_tokens=settings.min_tokens,
            accept=compatible,
        )
        plan.settings = settings

    def _room(self, prompt: int, needed: int) -> int:
        """Positions left in the context window after a ``prompt`` of this many positions
        (unbounded when the window is unknown); ContextWindowError when under ``needed``."""
        window = self.context_window
        if not window:
            return 1 << 62
        if prompt + needed > window:
            raise ContextWindowError(
                f"the prompt needs {prompt} positions (with the context it continues) and "
                f"{needed} more to {'generate' if needed == 1 else 'think'}, but "
                f"{self.identity.short()} attends to {window}: drop or summarise earlier "
                "turns, or start from a shorter context"
            )
        return window - prompt

    def _new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.model.config)

    def _cache_shapes(self) -> list[tuple[int, int, int]]:
        """Per layer: KV heads, key dim and value dim of this model's cache (probed once)."""
        if self._layer_shapes is None:
            cache = self._new_cache()
            with torch.inference_mode():
                self._forward([0], cache, logits=False)
            layers: list[Any] = list(cache.layers)
            self._layer_shapes = [
                (int(x.keys.shape[1]), int(x.keys.shape[3]), int(x.values.shape[3])) for x in layers
            ]
        return self._layer_shapes

    def _fork(self, context: AVPContext, length: int) -> DynamicCache:
        """A new cache whose layers view the first ``length`` positions of ``context``."""
        cache = self._new_cache()
        if length == 0:
            return cache
        layers: list[Any] = list(cache.layers)
        for layer, (k, v) in zip(layers, context.kv):
            k, v = k[:, :, :length], v[:, :, :length]
            if k.dtype != self.dtype or k.device != self.device:
                k, v = k.to(self.device, self.dtype), v.to(self.device, self.dtype)
            layer.lazy_initialization(k, v)
            layer.keys, layer.values = k, v
        return cache

    def _forward(
        self,
        ids: Sequence[int] | None,
        cache: DynamicCache,
        *,
        logits: bool = True,
        hidden: bool = False,
        embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run new positions through the model, growing ``cache``; last logits or hidden state."""
        inputs: dict[str, Any] = {self._cache_arg: cache, "use_cache": True, "logits_to_keep": 1}
        if embeds is not None:
            inputs["inputs_embeds"] = embeds
        else:
            inputs["input_ids"] = torch.tensor([list(ids or [])], device=self.device)
        out = self.model(**inputs, output_hidden_states=hidden)
        if hidden:
            return out.hidden_states[-1][0, -1]
        return out.logits[0, -1].float() if logits else out.logits

    def _tokens_before(self, produced: list[int], cut: int) -> int:
        """How many of ``produced`` decode to text that ends at or before ``cut``."""
        count = len(produced) - 1
        while count > 0:
            text = self.tokenizer.decode(produced[:count], skip_special_tokens=True)
            if len(text) <= cut:
                break
            count -= 1
        return count

    def _context(
        self,
        cache: DynamicCache,
        sequence: list[int],
        *,
        text: str | None,
        source_agent: str,
        last_hidden: torch.Tensor | None = None,
    ) -> AVPContext:
        layers: list[Any] = list(cache.layers)
        size = len(sequence)
        kv = tuple((layer.keys[:, :, :size], layer.values[:, :, :size]) for layer in layers)
        context = AVPContext(
            sequence=tuple(sequence),
            kv=kv,
            identity=self.identity,
            text=text,
            source_agent=source_agent,
            last_hidden=last_hidden,
        )
        return mark_trusted(context)

    def _record(self, usage: Usage) -> None:
        with self._stats_lock:
            self._stats.calls += 1
            self._stats.prompt_tokens += usage.prompt_tokens
            self._stats.reused_tokens += usage.reused_tokens
            self._stats.prefilled_tokens += usage.prefilled_tokens
            self._stats.completion_tokens += usage.completion_tokens
            self._stats.approx_reused_tokens += usage.approx_reused_tokens
            for calls in self._recorders:
                calls.append(usage)

    def __repr__(self) -> str:
        return f"HuggingFaceConnector({self.identity.short()}, device={self.device})"


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return frozenset(ids)


def _sample(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


def _safe_end(text: str, stops: Sequence[str], final: bool) -> int:
    """How much of ``text`` can be streamed: hold back a partial UTF-8 character and any
    tail that could still grow into a stop string."""
    if final:
        return len(text)
    end = len(text) - 1 if text.endswith("\ufffd") else len(text)
    for stop in stops:
        for size in range(min(len(stop) - 1, end), 0, -1):
            if text[end - size : end] == stop[:size]:
                end -= size
                break
    return max(end, 0)


def _before_calls(text: str) -> str:
    """The text before the first tool-call block (what may stream as content)."""
    index = text.find(_tools.OPEN)
    return text if index < 0 else text[:index]


def _stop_index(text: str, stops: Sequence[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None
