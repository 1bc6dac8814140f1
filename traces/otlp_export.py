"""One OTLP trace export, whatever carried it: OTLP/HTTP (`traces.ingest_views`) or
OTLP/gRPC (`traces.otlp_grpc`).

The key decides the project, the body is decoded within the limits, and the batch is
ingested with refused spans isolated (`traces.ingest_fallback`). Failures are
`OTLPError`s carrying the HTTP status; each transport translates it into its own answer
(a gRPC code, an HTTP status). `Unavailable` means the database is down: nothing was
stored and the exporter should send the same batch again later.
"""

from __future__ import annotations

import base64
import binascii
import logging

from traces import otlp
from traces.dberrors import is_outage
from traces.ingest import IngestResult
from traces.ingest_fallback import span_batch_ingest_isolating
from traces.otlp import OTLPError
from traces.services import KeyMatch, ingest_key_authenticate

logger = logging.getLogger(__name__)


class Unavailable(OTLPError):
    """The database cannot be used now; retry the same export later."""

    def __init__(self, message: str = "The database is unavailable; nothing was stored."):
        super().__init__(503, message)


def ingest_secret(*, authorization: str, api_key: str) -> str:
    """The ingest key from an `Authorization` value (Bearer, or Basic with the key as the
    password) or else an `x-api-key` value; '' when there is none."""
    auth = authorization.strip()
    if auth:
        scheme, _, value = auth.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return value.strip()
        if scheme == "basic":
            # Clients built for Basic auth (public:secret) can put the key as the password.
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return ""
            return decoded.partition(":")[2]
    return api_key.strip()


def otlp_key_check(*, secret: str) -> KeyMatch:
    """The active key for `secret`; OTLPError(401) if missing or unknown, Unavailable
    if the database cannot say."""
    if not secret:
        raise OTLPError(
            401, "Missing ingest key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
        )
    try:
        match = ingest_key_authenticate(secret=secret)
    except Exception as exc:
        if not is_outage(exc):
            raise
        logger.warning("database unavailable while authenticating: %s", exc)
        raise Unavailable() from exc
    if match is None:
        raise OTLPError(401, "Unknown or revoked ingest key.")
    return match


def otlp_spans_ingest(*, project_id: int, body: bytes, content_type: str) -> IngestResult:
    """Decode an uncompressed ExportTraceServiceRequest (protobuf or OTLP/JSON) and store
    its spans. OTLPError for a body that cannot be decoded, Unavailable for an outage;
    spans the limits or the database refuse are counted in the result, not raised."""
    spans = otlp.decode(body, content_type)
    try:
        return span_batch_ingest_isolating(project_id=project_id, spans=spans)
    except Exception as exc:
        if not is_outage(exc):
            raise
        logger.warning("database unavailable during ingest: %s", exc)
        raise Unavailable() from exc


def log_records_count(req) -> int:
    """Log records in an ExportLogsServiceRequest (protobuf, or OTLP/JSON as a dict)."""
    if isinstance(req, dict):
        return sum(
            len(sl.get("logRecords") or [])
            for rl in req.get("resourceLogs") or []
            for sl in rl.get("scopeLogs") or []
        )
    return sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)


def _metric_points(metric) -> int:
    for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary"):
        if metric.HasField(kind):
            return len(getattr(metric, kind).data_points)
    return 0


def metric_points_count(req) -> int:
    """Data points in an ExportMetricsServiceRequest (protobuf, or OTLP/JSON as a dict)."""
    if isinstance(req, dict):
        total = 0
        for rm in req.get("resourceMetrics") or []:
            for sm in rm.get("scopeMetrics") or []:
                for m in sm.get("metrics") or []:
                    for kind in ("gauge", "sum", "histogram", "exponentialHistogram", "summary"):
                        if isinstance(m.get(kind), dict):
                            total += len(m[kind].get("dataPoints") or [])
        return total
    return sum(
        _metric_points(m)
        for rm in req.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    )
