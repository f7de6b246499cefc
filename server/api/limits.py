"""Request limits at the HTTP edge: one answer at a time behind a bounded queue.

The LLM is the scarce resource: `AnswerGate` lets one request generate while at most
`queue_size` others wait; the next one is refused with `QueueFull` (429 + Retry-After).
`stream_in_thread` runs the blocking answer generator in worker threads and closes it when
the client goes away, so the model is freed for the next request.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import anyio
from fastapi.responses import StreamingResponse

from index.errors import QueueFull

_DONE = object()


class AnswerGate:
    """Admits one generating request plus `queue_size` waiting ones; refuses the rest."""

    def __init__(self, queue_size: int, first_estimate_s: float = 5.0) -> None:
        self.capacity = queue_size + 1
        self.admitted = 0
        self._turn = anyio.Lock()
        self._average_s = first_estimate_s

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queue's length times the mean answer time."""
        return max(1, math.ceil(self._average_s * max(1, self.admitted)))

    def admit(self) -> None:
        """Take a place in the queue now (before any response is sent), or raise QueueFull."""
        if self.admitted >= self.capacity:
            raise QueueFull(
                f"{self.admitted} requests are already answering or waiting for the model; "
                f"retry in about {self.retry_after()} s"
            )
        self.admitted += 1

    def leave(self) -> None:
        """Give back the place taken by `admit` (exactly once per admit)."""
        self.admitted -= 1

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for the model, hold it for the block, and update the mean answer time."""
        async with self._turn:
            started = time.monotonic()
            try:
                yield
            finally:
                self._average_s = 0.8 * self._average_s + 0.2 * (time.monotonic() - started)


async def stream_in_thread(gate: AnswerGate, make: Callable[[], Iterator]) -> AsyncIterator:
    """Yield the items of the blocking generator `make()` while holding the gate; always close it.

    The caller owns the queue place (`admit`/`leave`). Each `next()` runs in a worker thread. If the consumer stops early
    (client disconnect cancels us, or `aclose()`), the generator is closed, shielded from the
    cancellation, before the model is released.
    """
    async with gate.turn():
        items: Iterator = make()
        try:
            while True:
                item = await anyio.to_thread.run_sync(next, items, _DONE)
                if item is _DONE:
                    return
                yield item
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(items.close)


async def run_in_gate(gate: AnswerGate, make: Callable[[], Iterator]):
    """Admit, wait for the model, and return the last item of `make()` (the final Answer)."""
    gate.admit()
    try:
        last = None
        async for last in stream_in_thread(gate, make):
            pass
        return last
    finally:
        gate.leave()


class GatedStreamingResponse(StreamingResponse):
    """A streaming response that owns one queue place: whatever ends the response (done, error,
    client gone, even before the first byte) closes the body iterator and gives the place back."""

    def __init__(self, content: AsyncIterator, gate: AnswerGate, **kwargs) -> None:
        super().__init__(content, **kwargs)
        self.gate = gate

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()
            self.gate.leave()
