"""Blocking generation in a worker thread, seen by an event loop as an async stream.

Every adapter's async API (LangChain ``ainvoke``/``astream``, AutoGen ``create_stream`` and
agents) runs the connector through :func:`stream_in_thread`, so the loop never blocks on the
model.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()
_CANCELLED = object()


async def stream_in_thread(
    produce: Callable[[], Iterator[T]], cancel: asyncio.Future[Any] | None = None
) -> AsyncIterator[T]:
    """Yield the items of ``produce()``, which runs in the loop's default executor with the
    caller's context variables (LangChain callbacks, crewai runs).

    Cancelling the future ``cancel`` raises :class:`asyncio.CancelledError` at once and stops
    the worker before its next item (for the connector: before its next token); so does the
    consumer closing the stream early. An exception in the worker is raised here.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue()
    stop = threading.Event()

    def put(item: Any, error: BaseException | None = None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
            loop.call_soon_threadsafe(queue.put_nowait, (item, error))

    def work() -> None:
        error: BaseException | None = None
        try:
            iterator = produce()
            try:
                for item in iterator:
                    if stop.is_set():
                        break
                    put(item)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the awaiting side
            error = exc
        put(_END, error)

    def on_cancel(future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            stop.set()
            queue.put_nowait((_CANCELLED, None))

    if cancel is not None:
        cancel.add_done_callback(on_cancel)
    loop.run_in_executor(None, contextvars.copy_context().run, work)
    try:
        while True:
            item, error = await queue.get()
            if item is _CANCELLED:
                raise asyncio.CancelledError("cancelled while generating")
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        if cancel is not None:
            cancel.remove_done_callback(on_cancel)
