"""Real servers on loopback that tests deliver to: an HTTP receiver that records
requests and answers as told, and an SMTP handler (for aiosmtpd) that keeps messages."""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

# ------------------------------------------------------------------ HTTP receiver


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body)


class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers as told."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._planned: deque[tuple[int, bytes]] = deque()
        self.default: tuple[int, bytes] = (200, b"ok")
        self.by_path: dict[str, tuple[int, bytes]] = {}
        self.delay = 0.0
        self.extra_headers: dict[str, str] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(
                            method="POST",
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                        )
                    )
                    if self.path in receiver.by_path:
                        status, answer = receiver.by_path[self.path]
                    elif receiver._planned:
                        status, answer = receiver._planned.popleft()
                    else:
                        status, answer = receiver.default
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def fail(self, times: int, status: int = 503, body: bytes = b"unavailable") -> None:
        """Answer the next `times` requests with `status`, then the default."""
        self._planned.extend([(status, body)] * times)

    def always(self, status: int, body: bytes = b"") -> None:
        self.default = (status, body)


class RecordingHandler:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list = []
        self.rcpt_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
