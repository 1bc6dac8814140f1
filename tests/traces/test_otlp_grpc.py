"""OTLP/gRPC: the real OpenTelemetry gRPC exporter sends to the receiver, which stores
through the same ingest service as POST /v1/traces and answers the specification's codes.

The receiver runs in this process on its own threads (each with its own connection to
the test database), or as `manage.py otlp_grpc` in a process of its own."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.live import database_url
from tests.otlp_client import protobuf_body, record, simple_run
from traces.models import Span, Trace
from traces.otlp_grpc import EXPORT_METHOD, server_create, server_stop

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def start_receiver():
    """Start an in-process receiver on a free loopback port (after any settings change
    the test makes) and return its address; stopped when the test ends."""
    started = []
    # Each call closes its connection when it ends, so none outlives the test database.
    saved_max_age = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 0

    def start(workers: int = 2, tls: tuple[bytes, bytes] | None = None) -> str:
        server, port, executor = server_create(bind="127.0.0.1:0", workers=workers, tls=tls)
        started.append((server, executor))
        return f"127.0.0.1:{port}"

    yield start
    for server, executor in started:
        server_stop(server, executor, grace=2)
    connection.settings_dict["CONN_MAX_AGE"] = saved_max_age


@pytest.fixture
def receiver(start_receiver):
    return start_receiver()


def exporter(address: str, secret: str, **kwargs) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=f"http://{address}",
        insecure=True,
        headers={"authorization": f"Bearer {secret}"},
        timeout=5,
        **kwargs,
    )


@contextmanager
def raw_export(address: str, *, compression=None):
    """The Export method without the exporter: bytes in, the response (or RpcError) out."""
    with grpc.insecure_channel(address, compression=compression) as channel:
        yield channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


def call(address: str, body: bytes, secret: str | None, **kwargs):
    metadata = [("authorization", f"Bearer {secret}")] if secret else []
    with raw_export(address, **kwargs) as export:
        return export(body, metadata=metadata, timeout=10)


def refused(address: str, body: bytes, secret: str | None, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as exc:
        call(address, body, secret, **kwargs)
    return exc.value


def retry_delay(error: grpc.RpcError) -> int | None:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds
    return None


@contextmanager
def database_down():
    """New connections fail, as when the server is down (tests/test_outage.py)."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-dir/agentops.sqlite3"
    else:
        connection.settings_dict["PORT"] = "1"  # nothing listens there
        connection.settings_dict.setdefault("OPTIONS", {}).pop("pool", None)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


# ------------------------------------------------------------------ the real exporter


@pytest.mark.parametrize(
    "compression", [grpc.Compression.Gzip, grpc.Compression.NoCompression], ids=["gzip", "none"]
)
def test_the_real_exporter_stores_a_run(receiver, project, ingest_secret, compression):
    result = exporter(receiver, ingest_secret, compression=compression).export(record(simple_run))

    assert result is SpanExportResult.SUCCESS
    trace = Trace.objects.get(project=project)
    assert trace.span_count == 4
    assert trace.agent == "support-agent"
    assert trace.llm_call_count == 2
    assert trace.tool_call_count == 1
    assert trace.cost_usd > 0


def self_signed(directory: Path, name: str = "receiver") -> tuple[Path, Path]:
    """A certificate for localhost and its key, made by openssl (PEM files)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make a test certificate")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    san = "subjectAltName=DNS:localhost,IP:127.0.0.1"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost", "-addext", san),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_the_real_exporter_stores_a_run_over_tls(start_receiver, project, ingest_secret, tmp_path):
    cert, key = self_signed(tmp_path)
    address = start_receiver(tls=(cert.read_bytes(), key.read_bytes()))
    port = address.rsplit(":", 1)[1]
    secure = OTLPSpanExporter(
        endpoint=f"https://localhost:{port}",
        insecure=False,
        credentials=grpc.ssl_channel_credentials(root_certificates=cert.read_bytes()),
        headers={"authorization": f"Bearer {ingest_secret}"},
        timeout=5,
    )

    assert secure.export(record(simple_run)) is SpanExportResult.SUCCESS
    assert Trace.objects.get(project=project).span_count == 4
    # plaintext to the TLS port gets nowhere, and stores nothing
    error = refused(address, protobuf_body(record(simple_run)), ingest_secret)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert Trace.objects.filter(project=project).count() == 1


def test_a_resent_batch_is_stored_once(receiver, ingest_secret):
    spans = record(simple_run)
    sender = exporter(receiver, ingest_secret)

    assert sender.export(spans) is SpanExportResult.SUCCESS
    assert sender.export(spans) is SpanExportResult.SUCCESS

    assert Span.objects.count() == 4
    assert Trace.objects.get().span_count == 4


def test_the_exporter_gives_up_on_a_bad_key_and_nothing_is_stored(receiver, project):
    result = exporter(receiver, "ak_wrong").export(record(simple_run))

    assert result is SpanExportResult.FAILURE
    assert Span.objects.count() == 0


def test_the_key_may_come_as_x_api_key(receiver, ingest_secret):
    with raw_export(receiver) as export:
        export(protobuf_body(record(simple_run)), metadata=[("x-api-key", ingest_secret)])
    assert Span.objects.count() == 4


# ------------------------------------------------------------------ status codes


@pytest.mark.parametrize("secret", [None, "ak_not-a-key", "no-prefix"])
def test_a_missing_or_unknown_key_is_unauthenticated(receiver, project, secret):
    error = refused(receiver, protobuf_body(record(simple_run)), secret)

    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "key" in error.details()
    assert Span.objects.count() == 0


def test_a_revoked_key_is_unauthenticated(receiver, project, settings):
    from traces.services import ingest_key_create, ingest_key_revoke

    created = ingest_key_create(project=project)
    ingest_key_revoke(key=created.key)

    error = refused(receiver, protobuf_body(record(simple_run)), created.secret)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("body", [b"\xff\xff\xff\xff", b"not protobuf at all", b"\x0a\x05\x0a"])
def test_garbage_bytes_are_an_invalid_argument(receiver, ingest_secret, body):
    error = refused(receiver, body, ingest_secret)

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "ExportTraceServiceRequest" in error.details() or "protobuf" in error.details()
    assert retry_delay(error) is None
    assert Span.objects.count() == 0


def test_a_span_refused_by_validation_is_named_in_partial_success(receiver, ingest_secret):
    request = ExportTraceServiceRequest.FromString(protobuf_body(record(simple_run)))
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01\x02\x03"  # 3 bytes

    response = call(receiver, request.SerializeToString(), ingest_secret)

    assert response.partial_success.rejected_spans == 1
    assert "trace" in response.partial_success.error_message.lower()
    assert Span.objects.count() == 3


def test_spans_over_the_request_limit_are_named_in_partial_success(
    receiver, ingest_secret, settings
):
    settings.OTLP_MAX_SPANS_PER_REQUEST = 3

    response = call(receiver, protobuf_body(record(simple_run)), ingest_secret)

    assert response.partial_success.rejected_spans == 1
    assert "3-span per-request limit" in response.partial_success.error_message
    assert Span.objects.count() == 3


def test_a_full_batch_answers_no_partial_success(receiver, ingest_secret):
    response = call(receiver, protobuf_body(record(simple_run)), ingest_secret)

    assert not response.HasField("partial_success")


def test_gzip_is_inflated_by_the_receiver(receiver, ingest_secret):
    call(
        receiver,
        protobuf_body(record(simple_run)),
        ingest_secret,
        compression=grpc.Compression.Gzip,
    )

    assert Span.objects.count() == 4


def test_a_message_inflating_past_the_limit_is_refused_unread(
    start_receiver, ingest_secret, settings
):
    settings.OTLP_MAX_DECOMPRESSED_BYTES = 64 * 1024
    address = start_receiver()
    body = protobuf_body(record(simple_run)) + b"\x00" * (1024 * 1024)  # padding: field 0
    assert len(gzip.compress(body)) < 64 * 1024  # small on the wire, large inflated

    error = refused(address, body, ingest_secret, compression=grpc.Compression.Gzip)

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay(error) is None  # final: the same message would be refused again
    assert Span.objects.count() == 0


# ------------------------------------------------------------------ outage


def test_a_database_outage_is_unavailable_with_retry_info(receiver, ingest_secret, settings):
    # Key checks are not cached in tests: the key check itself meets the outage.
    body = protobuf_body(record(simple_run))

    with database_down():
        error = refused(receiver, body, ingest_secret)

    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert retry_delay(error) == settings.OTLP_RETRY_AFTER_SECONDS
    # The exporter retries; once the database is back, the batch is stored.
    call(receiver, body, ingest_secret)
    assert Span.objects.count() == 4


def test_an_outage_during_the_write_is_unavailable_and_the_resend_stores_once(
    receiver, ingest_secret, settings, caplog
):
    settings.INGEST_KEY_CACHE_SECONDS = 60
    first, second = record(simple_run), record(simple_run)
    call(receiver, protobuf_body(first), ingest_secret)  # the key is now remembered

    with database_down():
        error = refused(receiver, protobuf_body(second), ingest_secret)

    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert retry_delay(error) > 0
    assert "database unavailable during ingest" in caplog.text
    call(receiver, protobuf_body(second), ingest_secret)
    call(receiver, protobuf_body(second), ingest_secret)
    assert Span.objects.count() == 8
    assert Trace.objects.count() == 2


def test_the_exporter_reports_failure_during_an_outage(receiver, ingest_secret, settings):
    # RetryInfo asks for 9 s, more than the exporter's 5 s deadline: it gives up at once.
    with database_down():
        result = exporter(receiver, ingest_secret).export(record(simple_run))
    assert result is SpanExportResult.FAILURE


# ------------------------------------------------------------------ overload


@pytest.fixture
def one_export_held(start_receiver, ingest_secret, settings, monkeypatch):
    """A receiver with one worker whose only slot a trace export holds (inside the
    ingest service) for as long as the test runs; yields its address."""
    import threading

    from traces import otlp_grpc

    settings.INGEST_QUEUE_WAIT_SECONDS = 0.2
    settings.INGEST_BUSY_RETRY_AFTER_SECONDS = 1
    address = start_receiver(workers=1)
    inside, release = threading.Event(), threading.Event()
    original = otlp_grpc.otlp_spans_ingest

    def held(**kwargs):
        inside.set()
        release.wait(10)
        return original(**kwargs)

    monkeypatch.setattr(otlp_grpc, "otlp_spans_ingest", held)
    body = protobuf_body(record(simple_run))
    first = threading.Thread(target=call, args=(address, body, ingest_secret))
    first.start()
    try:
        assert inside.wait(10)
        yield address
    finally:
        release.set()
        first.join(10)


def test_an_export_past_the_queue_is_resource_exhausted_with_retry_info(
    one_export_held, ingest_secret
):
    error = refused(one_export_held, protobuf_body(record(simple_run)), ingest_secret)

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay(error) == 1
    assert Span.objects.count() == 0  # nothing of the refused export (the held one waits)


def test_logs_share_the_gate_with_traces(one_export_held, ingest_secret):
    """A log export waits for the same slots as a trace export (as on HTTP, where the
    admission guard counts the three signals), and is refused the same way."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )

    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.add()
    with grpc.insecure_channel(one_export_held) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            request_serializer=None,
            response_deserializer=ExportLogsServiceResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as refused_logs:
            export(
                request.SerializeToString(),
                metadata=[("authorization", f"Bearer {ingest_secret}")],
            )

    assert refused_logs.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay(refused_logs.value) == 1


# ------------------------------------------------------------------ the command


@contextmanager
def command(*args: str, env: dict | None = None):
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "otlp_grpc", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def listening_address(proc) -> str:
    line = proc.stdout.readline()  # the first line, printed once the port is bound
    found = re.search(r"listening on (\S+:\d+)", line)
    assert found, line + proc.stderr.read()
    return found.group(1)


@pytest.mark.live
def test_the_command_receives_in_its_own_process_and_stops_on_sigterm(ingest_secret, project):
    with command("--bind", "127.0.0.1:0", "--workers", "2") as proc:
        address = listening_address(proc)
        result = exporter(address, ingest_secret, compression=grpc.Compression.Gzip).export(
            record(simple_run)
        )
        assert result is SpanExportResult.SUCCESS
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "stopped" in proc.stdout.read()

    assert Trace.objects.get(project=project).span_count == 4


@pytest.mark.live
def test_the_command_says_so_when_the_port_is_in_use(start_receiver):
    address = start_receiver()

    with command("--bind", address) as proc:
        assert proc.wait(timeout=30) == 3
        assert f"Cannot listen for OTLP/gRPC on {address}" in proc.stderr.read()


def test_the_command_refuses_tls_files_it_cannot_use(tmp_path):
    cert, key = self_signed(tmp_path)
    _other_cert, other_key = self_signed(tmp_path, "other")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    cases = [
        (["--tls-cert", str(cert)], "needs both a certificate"),
        (["--tls-cert", str(cert), "--tls-key", str(tmp_path / "missing.key")], "Cannot read"),
        (["--tls-cert", str(not_pem), "--tls-key", str(key)], "is not a PEM file"),
        (["--tls-cert", str(cert), "--tls-key", str(other_key)], "do not make a usable pair"),
    ]
    for args, said in cases:
        with pytest.raises(CommandError, match=said):
            call_command("otlp_grpc", "--bind", "127.0.0.1:0", *args)


# ------------------------------------------------------------------ logs and metrics


def test_logs_are_accepted_counted_and_discarded(receiver, ingest_secret):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )

    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.add()
    request.resource_logs[0].scope_logs[0].log_records.add()
    with grpc.insecure_channel(receiver) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            request_serializer=None,
            response_deserializer=ExportLogsServiceResponse.FromString,
        )
        response = export(
            request.SerializeToString(), metadata=[("authorization", f"Bearer {ingest_secret}")]
        )
        with pytest.raises(grpc.RpcError) as no_key:
            export(request.SerializeToString())
        with pytest.raises(grpc.RpcError) as garbage:
            export(b"\xff\xff", metadata=[("authorization", f"Bearer {ingest_secret}")])

    assert response.partial_success.rejected_log_records == 2
    assert "stores traces only" in response.partial_success.error_message
    assert no_key.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert garbage.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_metrics_are_accepted_counted_and_discarded(receiver, ingest_secret):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )

    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="calls")
    metric.sum.data_points.add(as_int=1)
    metric.sum.data_points.add(as_int=2)
    metric.sum.data_points.add(as_int=3)
    with grpc.insecure_channel(receiver) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            request_serializer=None,
            response_deserializer=ExportMetricsServiceResponse.FromString,
        )
        response = export(request.SerializeToString(), metadata=[("x-api-key", ingest_secret)])

    assert response.partial_success.rejected_data_points == 3
    assert Span.objects.count() == 0
