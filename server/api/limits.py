"""Request limits at the HTTP edge: one answer at a time behind a bounded queue, API keys, the admin token.

The LLM is the scarce resource: `AnswerGate` lets one request generate while at most
`queue_size` others wait; the next one is refused with `QueueFull` (429 + Retry-After).
`stream_in_thread` runs the blocking answer generator in worker threads and closes it when
the client goes away, so the model is freed for the next request.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import anyio
from fastapi import HTTPException, Request
from fastapi.responses import StreamingResponse

from index.errors import QueueFull
from server.settings import Settings

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


def presented_key(request: Request) -> str:
    """The key a client sent: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def _matches(key: str, accepted: list[str]) -> bool:
    """Constant-time membership test, so timing does not leak key prefixes."""
    found = False
    for candidate in accepted:
        found |= bool(candidate) and hmac.compare_digest(key.encode(), candidate.encode())
    return found


def require_api_key(request: Request) -> None:
    """Dependency for /api/* and /v1/*: when BYLINE_API_KEYS is set, a valid key is required (401)."""
    settings: Settings = request.app.state.settings
    if not settings.api_keys:
        return
    accepted = list(settings.api_keys) + ([settings.admin_token] if settings.admin_token else [])
    if not _matches(presented_key(request), accepted):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong API key: send `Authorization: Bearer <key>` with one of BYLINE_API_KEYS",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_admin(request: Request) -> None:
    """Dependency for the rebuild endpoint: 403 when no BYLINE_ADMIN_TOKEN is set, 401 on a wrong token."""
    settings: Settings = request.app.state.settings
    if not settings.admin_token:
        raise HTTPException(status_code=403, detail="rebuild is disabled: set BYLINE_ADMIN_TOKEN to enable it")
    if not _matches(presented_key(request), [settings.admin_token]):
        raise HTTPException(
            status_code=401,
            detail="rebuild needs `Authorization: Bearer <BYLINE_ADMIN_TOKEN>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
