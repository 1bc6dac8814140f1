"""OTLP/HTTP endpoints. Thin: check the request, decode, call the ingest service, answer.

Status codes follow the OTLP/HTTP specification so that exporters retry exactly what
is worth retrying: 400/401/413/415 are final, 503 (with Retry-After) is retried and is
answered only for a database outage. A span the database refuses is rejected on its own
in a 200's partial success (`traces.ingest_fallback`), so its batch is neither retried
forever nor lost. Error bodies are a google.rpc.Status in the request's encoding.
"""

from __future__ import annotations

import orjson
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from traces import otlp
from traces.otlp_export import (
    Unavailable,
    ingest_secret,
    log_records_count,
    metric_points_count,
    otlp_key_check,
    otlp_spans_ingest,
)
from traces.otlp_status import status_body
from traces.services import KeyMatch


def _error(status: int, message: str, content_type: str, **headers) -> HttpResponse:
    body, content_type = status_body(status, message, content_type)
    response = HttpResponse(body, status=status, content_type=content_type)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _secret_from_headers(request: HttpRequest) -> str:
    return ingest_secret(
        authorization=request.headers.get("Authorization", ""),
        api_key=request.headers.get("X-Api-Key", ""),
    )


def _read_body(request: HttpRequest, content_type: str) -> bytes | HttpResponse:
    limit = settings.OTLP_MAX_BODY_BYTES
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _error(400, "Content-Length is not a number.", content_type)
    if declared > limit:
        return _error(413, f"Request body is larger than the {limit}-byte limit.", content_type)
    body = request.read(limit + 1)
    if len(body) > limit:
        return _error(413, f"Request body is larger than the {limit}-byte limit.", content_type)
    return body


def _prepare(request: HttpRequest) -> tuple[str, KeyMatch, bytes] | HttpResponse:
    """Method, content type, size and key checks shared by the three signals."""
    content_type = otlp.media_type(request.content_type)
    if request.method != "POST":
        response = _error(405, "Use POST to send OTLP data.", content_type)
        response["Allow"] = "POST"
        return response
    if content_type not in (otlp.PROTOBUF, otlp.JSON):
        return _error(
            415,
            f"Content-Type {content_type or '(none)'!r} is not supported; "
            f"send {otlp.PROTOBUF} or {otlp.JSON}.",
            otlp.JSON,
        )
    try:
        match = otlp_key_check(secret=_secret_from_headers(request))
    except Unavailable:
        return _unavailable(content_type)
    except otlp.OTLPError as exc:
        return _error(exc.status, exc.message, content_type)
    body = _read_body(request, content_type)
    if isinstance(body, HttpResponse):
        return body
    try:
        body = otlp.decompress(
            body,
            request.headers.get("Content-Encoding"),
            limit=settings.OTLP_MAX_DECOMPRESSED_BYTES,
        )
    except otlp.OTLPError as exc:
        return _error(exc.status, exc.message, content_type)
    return content_type, match, body


def _unavailable(content_type: str) -> HttpResponse:
    seconds = settings.OTLP_RETRY_AFTER_SECONDS
    return _error(
        503,
        f"The database is unavailable; nothing was stored. Retry in {seconds} s.",
        content_type,
        Retry_After=str(seconds),
    )


@csrf_exempt
@login_not_required
def otlp_traces(request: HttpRequest) -> HttpResponse:
    prepared = _prepare(request)
    if isinstance(prepared, HttpResponse):
        return prepared
    content_type, match, body = prepared
    try:
        result = otlp_spans_ingest(
            project_id=match.project_id, body=body, content_type=content_type
        )
    except Unavailable:
        return _unavailable(content_type)
    except otlp.OTLPError as exc:
        return _error(exc.status, exc.message, content_type)
    return HttpResponse(
        otlp.encode_response(content_type, rejected=result.rejected, message=result.message),
        content_type=content_type,
    )


def _not_stored(
    request: HttpRequest, signal: str, request_cls, response_cls, count
) -> HttpResponse:
    prepared = _prepare(request)
    if isinstance(prepared, HttpResponse):
        return prepared
    content_type, _match, body = prepared
    message = (
        f"This console stores traces only; {signal} are accepted and discarded. "
        f"Send traces to /v1/traces."
    )
    if content_type == otlp.JSON:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"The body is not valid JSON: {exc}", content_type)
        rejected = count(doc)
        field = "rejectedLogRecords" if signal == "logs" else "rejectedDataPoints"
        return HttpResponse(
            orjson.dumps({"partialSuccess": {field: str(rejected), "errorMessage": message}}),
            content_type=content_type,
        )
    req = request_cls()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        return _error(400, f"The body is not a valid {request_cls.__name__}: {exc}", content_type)
    response = response_cls()
    rejected = count(req)
    if signal == "logs":
        response.partial_success.rejected_log_records = rejected
    else:
        response.partial_success.rejected_data_points = rejected
    response.partial_success.error_message = message
    return HttpResponse(response.SerializeToString(), content_type=content_type)


@csrf_exempt
@login_not_required
def otlp_logs(request: HttpRequest) -> HttpResponse:
    return _not_stored(
        request, "logs", ExportLogsServiceRequest, ExportLogsServiceResponse, log_records_count
    )


@csrf_exempt
@login_not_required
def otlp_metrics(request: HttpRequest) -> HttpResponse:
    return _not_stored(
        request,
        "metrics",
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
        metric_points_count,
    )
