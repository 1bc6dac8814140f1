"""OTLP/gRPC trace receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

Runs in its own process (`manage.py otlp_grpc`): a gRPC server's threads do not survive
the fork of a pre-forking web server. Each export goes through the same steps as
POST /v1/traces (`traces.otlp_export`): the key from the `authorization` metadata
(`Bearer <key>`) or `x-api-key`, the decoding limits, idempotent ingestion with refused
spans reported in `partial_success`. The logs and metrics services are answered as
POST /v1/logs and /v1/metrics are: accepted, counted as rejected, discarded.

Status codes follow the OTLP specification so that exporters retry exactly what is worth
retrying: UNAUTHENTICATED and INVALID_ARGUMENT are final; UNAVAILABLE (database outage)
and RESOURCE_EXHAUSTED (too many exports at once) carry a `google.rpc.RetryInfo`, without
which RESOURCE_EXHAUSTED is not retried.

The request arrives as raw bytes and is decoded by our own decoder: the generated
servicer would parse it first, answering INTERNAL instead of INVALID_ARGUMENT for a body
that is not protobuf and spending the limits' protection on a second parse. gRPC inflates
gzip itself, refusing a message over `grpc.max_receive_message_length`
(OTLP_MAX_DECOMPRESSED_BYTES) once inflated.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc
from django.conf import settings
from django.db import close_old_connections
from google.protobuf.any_pb2 import Any
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from traces import otlp
from traces.otlp_export import (
    Unavailable,
    ingest_secret,
    log_records_count,
    metric_points_count,
    otlp_key_check,
    otlp_spans_ingest,
)

SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
EXPORT_METHOD = f"/{SERVICE}/Export"
LOGS_SERVICE = logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name
METRICS_SERVICE = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name

# An OTLPError's HTTP status → gRPC code. 413 and 415 cannot come from a gRPC body (the
# size is gRPC's to refuse, the encoding is always protobuf) but stay final if they do.
GRPC_CODE = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
}


class Gate:
    """Admits exports by count and by size: at most `slots` at once, their sizes summing
    to at most `budget` (one export alone always runs; decoding costs memory in proportion
    to the size). A caller waits at most `wait` seconds for its turn."""

    def __init__(self, *, slots: int, budget: int, wait: float) -> None:
        self.slots = max(1, slots)
        self.budget = budget
        self.wait = wait
        self.running = 0
        self.weight = 0
        self._cond = threading.Condition()

    def _fits(self, weight: int) -> bool:
        return self.running == 0 or (
            self.running < self.slots and self.weight + weight <= self.budget
        )

    def enter(self, weight: int) -> bool:
        weight = min(weight, self.budget)
        deadline = time.monotonic() + self.wait
        with self._cond:
            while not self._fits(weight):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self.running += 1
            self.weight += weight
            return True

    def leave(self, weight: int) -> None:
        with self._cond:
            self.running -= 1
            self.weight -= min(weight, self.budget)
            self._cond.notify_all()


def _abort(context: grpc.ServicerContext, code: int, message: str, retry_after: int = 0):
    status = status_pb2.Status(code=code, message=message)
    if retry_after > 0:
        detail = Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_after)))
        status.details.append(detail)
    context.abort_with_status(rpc_status.to_status(status))


class Gated:
    """An Export method behind the receiver's gate, as every signal is on HTTP (the
    admission guard): it takes the serialized request and returns the serialized
    response; a call that finds the gate full for INGEST_QUEUE_WAIT_SECONDS is answered
    RESOURCE_EXHAUSTED with RetryInfo."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def __call__(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if not context.is_active():  # the exporter gave up while this waited for a thread
            return b""
        if not self.gate.enter(len(request)):
            seconds = settings.INGEST_BUSY_RETRY_AFTER_SECONDS
            _abort(
                context,
                code_pb2.RESOURCE_EXHAUSTED,
                "The console is saturated with ingestion; nothing was stored. "
                f"Retry in {seconds} s.",
                seconds,
            )
        # What Django's request_started and request_finished do for a web request: a
        # connection the database dropped, or past CONN_MAX_AGE, is not reused.
        close_old_connections()
        try:
            return self._export(request, context)
        finally:
            close_old_connections()
            self.gate.leave(len(request))

    def _export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        raise NotImplementedError


class TraceExport(Gated):
    """Traces: the ingest service, as POST /v1/traces calls it."""

    def _export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with _answering(context):
            match = otlp_key_check(secret=_secret(context))
            result = otlp_spans_ingest(
                project_id=match.project_id, body=request, content_type=otlp.PROTOBUF
            )
        return otlp.encode_response(otlp.PROTOBUF, rejected=result.rejected, message=result.message)


class Discard(Gated):
    """Logs and metrics: checked, counted and discarded, with a partial success that
    rejects every record and says why, as POST /v1/logs and /v1/metrics answer, so that
    exporters set up for every signal keep working."""

    def __init__(self, gate: Gate, signal: str, request_cls, response_cls, count) -> None:
        super().__init__(gate)
        self.signal = signal
        self.request_cls = request_cls
        self.response_cls = response_cls
        self.count = count

    def _export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with _answering(context):
            otlp_key_check(secret=_secret(context))
        req = self.request_cls()
        try:
            req.ParseFromString(request)
        except DecodeError as exc:
            _abort(
                context,
                code_pb2.INVALID_ARGUMENT,
                f"The message is not a valid {self.request_cls.__name__}: {exc}",
            )
        response = self.response_cls()
        rejected = self.count(req)
        if self.signal == "logs":
            response.partial_success.rejected_log_records = rejected
        else:
            response.partial_success.rejected_data_points = rejected
        response.partial_success.error_message = (
            f"This console stores traces only; {self.signal} are accepted and discarded. "
            f"Send traces to {SERVICE}."
        )
        return response.SerializeToString()


@contextmanager
def _answering(context: grpc.ServicerContext):
    """Turn the ingest service's errors into the specification's status codes."""
    try:
        yield
    except Unavailable:
        seconds = settings.OTLP_RETRY_AFTER_SECONDS
        _abort(
            context,
            code_pb2.UNAVAILABLE,
            f"The database is unavailable; nothing was stored. Retry in {seconds} s.",
            seconds,
        )
    except otlp.OTLPError as exc:
        _abort(context, GRPC_CODE.get(exc.status, code_pb2.INVALID_ARGUMENT), exc.message)


def _secret(context: grpc.ServicerContext) -> str:
    metadata = dict(context.invocation_metadata())
    return ingest_secret(
        authorization=_text(metadata.get("authorization")),
        api_key=_text(metadata.get("x-api-key")),
    )


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):  # only `-bin` keys arrive as bytes
        return ""
    return value or ""


def _raw(behaviour) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=None, response_serializer=None
    )


def server_create(
    *, bind: str, workers: int, tls: tuple[bytes, bytes] | None = None
) -> tuple[grpc.Server, int, ThreadPoolExecutor]:
    """A started receiver on `bind` ("host:port"; port 0 picks a free one) and the port it
    listens on; with `tls` (certificate chain, private key: PEM) it speaks TLS. Raises
    RuntimeError when the address cannot be bound (in use)."""
    # Threads beyond `workers` only wait at the gate for up to INGEST_QUEUE_WAIT_SECONDS,
    # then answer RESOURCE_EXHAUSTED with RetryInfo; past twice that many calls gRPC
    # refuses new ones at once, so a flood cannot queue unbounded messages in memory.
    threads = max(1, workers) + max(0, settings.INGEST_QUEUE)
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="otlp-grpc")
    # One gate for the three signals: INGEST_CONCURRENCY exports at once per receiver
    # whatever they carry, as the admission guard counts them on HTTP.
    gate = Gate(
        slots=workers,
        budget=settings.OTLP_MAX_DECOMPRESSED_BYTES,
        wait=settings.INGEST_QUEUE_WAIT_SECONDS,
    )
    handlers = [
        grpc.method_handlers_generic_handler(SERVICE, {"Export": _raw(TraceExport(gate))}),
        grpc.method_handlers_generic_handler(
            LOGS_SERVICE,
            {
                "Export": _raw(
                    Discard(
                        gate,
                        "logs",
                        logs_service_pb2.ExportLogsServiceRequest,
                        logs_service_pb2.ExportLogsServiceResponse,
                        log_records_count,
                    )
                )
            },
        ),
        grpc.method_handlers_generic_handler(
            METRICS_SERVICE,
            {
                "Export": _raw(
                    Discard(
                        gate,
                        "metrics",
                        metrics_service_pb2.ExportMetricsServiceRequest,
                        metrics_service_pb2.ExportMetricsServiceResponse,
                        metric_points_count,
                    )
                )
            },
        ),
    ]
    server = grpc.server(
        executor,
        handlers=handlers,
        options=[
            ("grpc.max_receive_message_length", settings.OTLP_MAX_DECOMPRESSED_BYTES),
            # Without this a second receiver would share the port silently.
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=2 * threads,
    )
    try:
        if tls is None:
            port = server.add_insecure_port(bind)
        else:
            chain, key = tls
            port = server.add_secure_port(bind, grpc.ssl_server_credentials([(key, chain)]))
    except RuntimeError:
        executor.shutdown(wait=False)
        raise
    if port == 0:  # older grpcio reports a failed bind this way
        executor.shutdown(wait=False)
        raise RuntimeError(f"Failed to bind to address {bind}")
    server.start()
    return server, port, executor


def server_stop(server: grpc.Server, executor: ThreadPoolExecutor, grace: float = 5.0) -> None:
    """Finish the exports under way (up to `grace` seconds), then stop."""
    server.stop(grace).wait()
    executor.shutdown(wait=True)
