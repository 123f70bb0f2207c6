"""AutoGen's cancellation tokens on top of avp_core's thread-to-loop stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

from autogen_core import CancellationToken

from avp_core._threads import stream_in_thread as _stream_in_thread

T = TypeVar("T")


async def stream_in_thread(
    produce: Callable[[], Iterator[T]], cancellation_token: CancellationToken | None = None
) -> AsyncIterator[T]:
    """Yield the items of ``produce()`` run in a worker thread; cancelling
    ``cancellation_token`` raises :class:`asyncio.CancelledError` at once and stops the worker
    before its next token."""
    if cancellation_token is not None and cancellation_token.is_cancelled():
        raise asyncio.CancelledError("cancelled before generation started")
    signal: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if cancellation_token is not None:
        cancellation_token.link_future(signal)
    try:
        async for item in _stream_in_thread(produce, signal):
            yield item
    finally:
        if not signal.done():
            signal.set_result(None)
