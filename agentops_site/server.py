"""The web server: gunicorn managing uvicorn workers that serve `agentops_site.asgi`.

Why not gunicorn's sync workers: a sync worker belongs to one socket until the request
is read, so two clients that send a header line every few seconds stop a two-worker
server. Here each worker's event loop reads requests (headers by httptools, bodies by
`admission.Admission`) without tying up a thread; Django runs only once a request is
complete. Two timeouts close what would otherwise stay open:

- a request's headers must arrive within `REQUEST_HEADER_TIMEOUT_SECONDS` of its first
  byte (or of the connection opening): a slow-headers client is cut off (408);
- an idle keep-alive connection is closed after `KEEPALIVE_SECONDS` (uvicorn's own).

The command line, the Docker image and `manage.py up` all start the server the same way:

    gunicorn -c python:agentops_site.gunicorn_conf agentops_site.asgi:application
"""

from __future__ import annotations

import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

HEADER_TIMEOUT = float(os.environ.get("REQUEST_HEADER_TIMEOUT_SECONDS", "10"))

_TIMEOUT_BODY = b"The request headers did not arrive in time.\n"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, plus a deadline on each request's headers."""

    _header_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            # Between requests (or before the first) with nothing or half a header sent.
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


class Worker(UvicornWorker):
    """uvicorn worker with the guarded protocol; no lifespan (Django has none)."""

    CONFIG_KWARGS = {
        "loop": "auto",
        "http": GuardedHttpToolsProtocol,
        "lifespan": "off",
        "server_header": False,
    }
