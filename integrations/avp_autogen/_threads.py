"""Blocking generation in a worker thread, seen by the event loop as an async stream."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from autogen_core import CancellationToken

T = TypeVar("T")

_END = object()
_CANCELLED = object()


async def stream_in_thread(
    produce: Callable[[], Iterator[T]], cancellation_token: CancellationToken | None = None
) -> AsyncIterator[T]:
    """Yield the items of ``produce()``, which runs in the loop's default executor.

    The event loop never blocks. Cancelling ``cancellation_token`` (it is linked to a future
    here) raises :class:`asyncio.CancelledError` at once and stops the worker before its next
    item (for the connector: before its next token). Closing the stream early stops it too.
    """
    if cancellation_token is not None and cancellation_token.is_cancelled():
        raise asyncio.CancelledError("cancelled before generation started")
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

    signal: asyncio.Future[None] = loop.create_future()
    if cancellation_token is not None:
        cancellation_token.link_future(signal)
    signal.add_done_callback(on_cancel)
    loop.run_in_executor(None, work)
    try:
        while True:
            item, error = await queue.get()
            if item is _CANCELLED:
                raise asyncio.CancelledError("cancelled by its CancellationToken")
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        if not signal.done():
            signal.set_result(None)
