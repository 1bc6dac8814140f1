"""The ASGI entry point's guard: bounded bodies, bounded ingest work, quick refusals.

Every request passes through `Admission` before Django sees it:

- The body is read here, asynchronously, before any thread or database connection is
  taken: a client that sends its body slowly holds a coroutine, not a worker, and is cut
  off after `REQUEST_BODY_TIMEOUT_SECONDS` (408). A body over the limit is not read past
  the limit: the OTLP view answers 413 in the request's encoding, other views 413 too.
- OTLP ingestion (`…/v1/traces`, `/v1/logs`, `/v1/metrics`) runs at most
  `INGEST_CONCURRENCY` requests at once per server process, whose bodies inflate to at
  most `OTLP_MAX_DECOMPRESSED_BYTES` together (decoding costs memory in proportion to
  that, so two maximal requests take turns instead of doubling a worker's peak memory;
  one request alone always runs). A few more may wait
  (`INGEST_QUEUE`, at most `INGEST_QUEUE_WAIT_SECONDS`); beyond that the request is
  answered at once with 429 and `Retry-After`, which every OTLP exporter retries. 429,
  not 503: a load balancer that counts 5xx would take a merely busy server out of
  rotation. Pages, the API and `/healthz` never wait behind ingestion, so the console stays
  usable while exporters push as hard as they can.

The limits are per process; a server with N worker processes admits N times as much.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass, field

from django.conf import settings

from traces.otlp_status import status_body

INGEST_PATH = re.compile(r"(?:^|/)v1/(?:traces|logs|metrics)/?$")


@dataclass
class Gate:
    """Admits work by count and by weight: at most `slots` at once, and their weights
    summing to at most `budget` (one request alone is always admitted, whatever its
    weight). At most `queue` requests wait, first come first served, each for at most
    `wait` seconds. Bookkeeping is synchronous: the event loop runs one step at a time."""

    slots: int
    budget: int
    queue: int
    wait: float
    running: int = 0
    weight: int = 0
    waiters: deque = field(default_factory=deque)

    def _fits(self, weight: int) -> bool:
        return self.running == 0 or (
            self.running < self.slots and self.weight + weight <= self.budget
        )

    def _take(self, weight: int) -> None:
        self.running += 1
        self.weight += weight

    async def enter(self, weight: int) -> bool:
        weight = min(weight, self.budget)
        if not self.waiters and self._fits(weight):
            self._take(weight)
            return True
        if len(self.waiters) >= self.queue or self.wait <= 0:
            return False
        admitted = asyncio.get_running_loop().create_future()
        entry = (weight, admitted)
        self.waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(admitted), self.wait)
        except TimeoutError:
            if admitted.done():  # admitted in the same instant: keep the place
                return True
            self.waiters.remove(entry)
            return False
        except asyncio.CancelledError:  # the client went away while waiting
            if admitted.done():
                self.leave(weight)
            else:
                self.waiters.remove(entry)
            raise
        return True

    def leave(self, weight: int) -> None:
        self.running -= 1
        self.weight -= min(weight, self.budget)
        while self.waiters and self._fits(self.waiters[0][0]):
            weight, admitted = self.waiters.popleft()
            if admitted.done():
                continue
            self._take(weight)
            admitted.set_result(True)


class Admission:
    """ASGI middleware in front of Django's handler (see the module docstring)."""

    def __init__(self, app):
        self.app = app
        self.ingest = Gate(
            slots=max(1, settings.INGEST_CONCURRENCY),
            budget=settings.OTLP_MAX_DECOMPRESSED_BYTES,
            queue=max(0, settings.INGEST_QUEUE),
            wait=settings.INGEST_QUEUE_WAIT_SECONDS,
        )
        self.body_timeout = settings.REQUEST_BODY_TIMEOUT_SECONDS
        self.busy_retry_after = settings.INGEST_BUSY_RETRY_AFTER_SECONDS

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ingest = bool(INGEST_PATH.search(scope["path"]))
        limit = settings.OTLP_MAX_BODY_BYTES if ingest else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            body = await asyncio.wait_for(_read_body(receive, limit), self.body_timeout)
        except TimeoutError:
            await _plain(send, 408, "The request body did not arrive in time.")
            return
        if body is None:  # the client went away
            return
        replay = _replay(body, receive)
        if not ingest:
            await self.app(scope, replay, send)
            return
        weight = _decoded_size(scope, body)
        if not await self.ingest.enter(weight):
            await _busy(send, scope, self.busy_retry_after)
            return
        try:
            await self.app(scope, replay, send)
        finally:
            self.ingest.leave(weight)


async def _read_body(receive, limit: int) -> bytes | None:
    """The whole body, or its first limit + 1 bytes (enough for the view to answer 413)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk and size <= limit:
            chunks.append(chunk[: limit + 1 - size])
            size += len(chunks[-1])
        if not message.get("more_body", False):
            return b"".join(chunks)
        if size > limit:
            # Stop reading: the rest would only be thrown away. The server closes the
            # connection after the 413 since the body was not consumed.
            return b"".join(chunks)


def _decoded_size(scope, body: bytes) -> int:
    """What the body will inflate to, without inflating it: a gzip stream ends with its
    size (mod 2**32; the decoder enforces the real limit). Decoding costs memory in
    proportion, so this is the request's weight at the gate."""
    encoding = _header(scope, b"content-encoding").strip().lower()
    if encoding in ("", "identity"):
        return len(body)
    if encoding == "gzip" and len(body) >= 18:
        return int.from_bytes(body[-4:], "little")
    return 2**62  # unknown (deflate): weighs as much as the gate allows


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # only http.disconnect can come now

    return replay


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


async def _respond(send, status: int, body: bytes, content_type: str, extra=()) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _plain(send, status: int, message: str) -> None:
    await _respond(send, status, message.encode(), "text/plain; charset=utf-8")


async def _busy(send, scope, retry_after: int) -> None:
    body, content_type = status_body(
        429,
        f"The console is saturated with ingestion; nothing was stored. Retry in {retry_after} s.",
        _header(scope, b"content-type"),
    )
    await _respond(send, 429, body, content_type, [(b"retry-after", str(retry_after).encode())])
