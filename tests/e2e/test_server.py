"""The production web server (gunicorn + uvicorn workers + admission guard), run for real.

Each test starts the same command line as `manage.py up` and the Docker image, on the
test database, and attacks it over loopback: slow and idle clients, and more ingestion
than it can take.
"""

from __future__ import annotations

import gzip
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.live import database_url, free_port
from traces.models import Span

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def start_server(**env_overrides) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "ACCESS_LOG": "",
        **env_overrides,
    }
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "-c", "python:agentops_site.gunicorn_conf",
            "--log-level", "warning", "agentops_site.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if get(port, "/healthz", timeout=1)[0] == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    raise AssertionError("the server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def server(request):
    proc, port = start_server(**getattr(request, "param", {}))
    yield port
    stop_server(proc)


def get(port: int, path: str, timeout: float = 5) -> tuple[int, float]:
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        status = conn.getresponse().status
    finally:
        conn.close()
    return status, time.monotonic() - t0


def slow_client(port: int, stop: threading.Event, *, body: bool) -> None:
    """Sends one header line (or one body byte) every half second, never finishing."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            if body:
                sock.sendall(
                    b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n"
                )
            else:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            while not stop.wait(0.5):
                sock.sendall(b"{" if body else b"X-Slow: 1\r\n")
    except OSError:
        pass  # cut off by the server: that is allowed


def test_slow_clients_do_not_stall_the_server(server):
    stop = threading.Event()
    # Many more slow connections than the server has workers (one) or threads.
    clients = [
        threading.Thread(target=slow_client, args=(server, stop), kwargs={"body": i % 2 == 0})
        for i in range(16)
    ]
    for t in clients:
        t.start()
    try:
        time.sleep(1)
        timings = []
        for _ in range(10):
            status, seconds = get(server, "/healthz")
            assert status == 200
            timings.append(seconds)
            time.sleep(0.2)
        assert max(timings) < 1.0, timings
    finally:
        stop.set()
        for t in clients:
            t.join()


@pytest.mark.parametrize("server", [{"REQUEST_HEADER_TIMEOUT_SECONDS": "1"}], indirect=True)
def test_a_client_that_never_finishes_its_headers_is_cut_off(server):
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: 1\r\n")
        t0 = time.monotonic()
        answer = sock.recv(200)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.8 < time.monotonic() - t0 < 5
        assert sock.recv(200) == b""  # and closed

    # A connection that never sends anything is closed too.
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        t0 = time.monotonic()
        assert sock.recv(200).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("server", [{"REQUEST_BODY_TIMEOUT_SECONDS": "1"}], indirect=True)
def test_a_body_that_never_arrives_is_answered_408(server):
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        assert sock.recv(200).startswith(b"HTTP/1.1 408")


def span_batch(spans: int) -> bytes:
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    trace_id = secrets.token_bytes(16)
    start = time.time_ns() - 10**9
    for i in range(spans):
        span = scope_spans.spans.add()
        span.trace_id = trace_id
        span.span_id = secrets.token_bytes(8)
        span.name = f"step {i}"
        span.start_time_unix_nano = start + i
        span.end_time_unix_nano = start + i + 10**6
        attr = span.attributes.add()
        attr.key, attr.value.string_value = "gen_ai.operation.name", "chat"
    return gzip.compress(request.SerializeToString())


@pytest.mark.parametrize(
    "server",
    [{"INGEST_CONCURRENCY": "1", "INGEST_QUEUE": "1", "INGEST_QUEUE_WAIT_SECONDS": "0.2"}],
    indirect=True,
)
def test_saturated_ingestion_is_refused_at_once_and_pages_stay_responsive(server, ingest_secret):
    stop = threading.Event()
    statuses: list[int] = []
    refusals: list[tuple[str, str, float]] = []
    accepted_spans = [0]
    lock = threading.Lock()

    def exporter():
        conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
        while not stop.is_set():
            body = span_batch(50)
            t0 = time.monotonic()
            conn.request(
                "POST",
                "/v1/traces",
                body=body,
                headers={
                    "Content-Type": "application/x-protobuf",
                    "Content-Encoding": "gzip",
                    "Authorization": f"Bearer {ingest_secret}",
                },
            )
            response = conn.getresponse()
            payload = response.read()
            with lock:
                statuses.append(response.status)
                if response.status == 200:
                    accepted_spans[0] += 50
                elif response.status == 429:
                    message = status_pb2.Status.FromString(payload).message
                    refusals.append(
                        (response.getheader("Retry-After"), message, time.monotonic() - t0)
                    )

    exporters = [threading.Thread(target=exporter) for _ in range(12)]
    for t in exporters:
        t.start()
    try:
        time.sleep(0.5)
        health = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            status, seconds = get(server, "/healthz", timeout=10)
            assert status == 200
            health.append(seconds)
            time.sleep(0.1)
    finally:
        stop.set()
        for t in exporters:
            t.join()

    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) > 0
    assert refusals, "12 exporters against one ingest slot were never refused"
    retry_after, message, _ = refusals[0]
    assert retry_after == "1"
    assert "saturated" in message
    # Refused at once: at most the queue wait, not after queueing behind the others.
    assert max(seconds for *_, seconds in refusals) < 1.5
    assert max(health) < 1.0, sorted(health)[-5:]
    # Everything answered 200 is stored; nothing refused is.
    assert Span.objects.count() == accepted_spans[0]
