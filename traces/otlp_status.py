"""OTLP error bodies: a `google.rpc.Status` in the request's encoding.

Used by the OTLP views and by the server's admission guard, which answers before
Django runs (`agentops_site/admission.py`).
"""

from __future__ import annotations

import orjson
from google.rpc import status_pb2

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# HTTP status → gRPC code carried in the Status body.
GRPC_CODE = {400: 3, 401: 16, 405: 12, 408: 4, 413: 8, 415: 3, 429: 8, 503: 14}


def status_body(status: int, message: str, content_type: str) -> tuple[bytes, str]:
    """The body and content type of an error answer; protobuf only if the request was."""
    code = GRPC_CODE.get(status, 2)
    if content_type.split(";", 1)[0].strip().lower() == PROTOBUF:
        return status_pb2.Status(code=code, message=message).SerializeToString(), PROTOBUF
    return orjson.dumps({"code": code, "message": message}), JSON
