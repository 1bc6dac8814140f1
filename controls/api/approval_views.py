"""Approvals over the API (`controls.approvals`).

`POST /api/approvals/` (the project key): ask a person before an action; 201 with the
request's id, `pending` and its deadline. `GET /api/approvals/<id>/?wait=30`: the request as
it stands, waiting up to `wait` seconds (at most MAX_WAIT_S) for a decision or the
deadline. A wait holds one web thread: at most `APPROVAL_MAX_WAITERS` per process wait at
once; past that the answer is the current status at once, with `Retry-After`.

`GET /api/controls/approvals/?project=&since=&until=`: requests per status and the tool
calls that ran outside their approval, scoped and validated like the other controls reports.
"""

from __future__ import annotations

import json
from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from controls.api.policy_views import PARSERS, ProjectKeyOnly
from controls.api.serializers import MAX_ARGUMENT_DEPTH, _depth
from controls.api.views import project_window
from controls.approvals import (
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    approval_current,
    approval_get,
    approval_report,
    approval_request,
    approval_wait,
    arguments_parse,
)
from controls.models import Approval, ToolContract
from traces.models import Project

MAX_WAIT_S = 30
MAX_ARGUMENTS_CHARS = 65_536
BUSY_RETRY_AFTER_S = 1
HEX = "0123456789abcdef"


@extend_schema_field(OpenApiTypes.OBJECT)
class ArgumentsField(serializers.Field):
    """A JSON object, or the arguments' JSON text as a model emitted it."""

    def to_internal_value(self, data):
        if not isinstance(data, dict | str):
            raise serializers.ValidationError("Must be a JSON object, or its JSON text.")
        if isinstance(data, str) and len(data) > MAX_ARGUMENTS_CHARS:
            raise serializers.ValidationError(f"At most {MAX_ARGUMENTS_CHARS} characters of JSON.")
        try:
            value = arguments_parse(data) if isinstance(data, str) else data
            deep = _depth(value) > MAX_ARGUMENT_DEPTH
        except RecursionError:
            deep = True
        if deep:
            raise serializers.ValidationError(f"Nests at most {MAX_ARGUMENT_DEPTH} levels.")
        try:
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            text.encode()  # a lone surrogate cannot be stored or hashed
        except (ValueError, RecursionError, UnicodeEncodeError):
            raise serializers.ValidationError("Cannot be read as JSON.") from None
        if len(text) > MAX_ARGUMENTS_CHARS:
            raise serializers.ValidationError(f"At most {MAX_ARGUMENTS_CHARS} characters of JSON.")
        if "\x00" in text or "\\u0000" in text:
            raise serializers.ValidationError("Must not contain NUL characters.")
        return data

    def to_representation(self, value):
        return value


def _hex_id(length: int):
    def check(value: str) -> None:
        if value and (len(value) != length or value.strip(HEX)):
            raise serializers.ValidationError(f"Must be {length} lowercase hex digits.")

    return check


class ApprovalRequestSerializer(serializers.Serializer):
    trace_id = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=32, validators=[_hex_id(32)]
    )
    span_id = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=16, validators=[_hex_id(16)]
    )
    agent = serializers.CharField(max_length=200)
    agent_version = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    tool = serializers.CharField(max_length=200)
    arguments = ArgumentsField(help_text="A JSON object, or its JSON text")
    risk = serializers.ChoiceField(
        choices=ToolContract.Risk.values, required=False, allow_blank=True, default=""
    )
    confidence = serializers.DecimalField(
        max_digits=4,
        decimal_places=3,
        min_value=Decimal(0),
        max_value=Decimal(1),
        required=False,
        allow_null=True,
        default=None,
    )
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    timeout_s = serializers.IntegerField(
        min_value=MIN_TIMEOUT_S, max_value=MAX_TIMEOUT_S, required=False, default=300
    )


class ApprovalCreatedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    expires_at = serializers.DateTimeField()


class ApprovalAnswerSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Approval.Status.choices)
    decided_by = serializers.CharField()
    note = serializers.CharField()
    decided_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField()


def _answer(approval: Approval) -> dict:
    return {
        "id": approval.public_id,
        "status": approval.status,
        "decided_by": approval.decided_by,
        "note": approval.note,
        "decided_at": approval.decided_at,
        "expires_at": approval.expires_at,
    }


class ApprovalListView(APIView):
    """Ask a person before an action. The request is stored with the SHA-256 of its
    arguments' canonical JSON and a deadline `timeout_s` away, and enters the review queue."""

    permission_classes = [ProjectKeyOnly]
    parser_classes = PARSERS

    @extend_schema(request=ApprovalRequestSerializer, responses={201: ApprovalCreatedSerializer})
    def post(self, request):
        question = ApprovalRequestSerializer(data=request.data)
        question.is_valid(raise_exception=True)
        project = Project.objects.get(pk=request.user.project_id)
        approval = approval_request(project=project, **question.validated_data)
        return Response(
            {
                "id": approval.public_id,
                "status": approval.status,
                "expires_at": approval.expires_at,
            },
            status=status.HTTP_201_CREATED,
        )


class ApprovalDetailView(APIView):
    """The request as it stands; with `?wait=N` (at most 30) waits up to N seconds for a
    decision or expiry. A request past its deadline answers `expired`, never pending."""

    permission_classes = [ProjectKeyOnly]

    @extend_schema(
        parameters=[
            OpenApiParameter("wait", float, description=f"Seconds to wait, 0 to {MAX_WAIT_S}")
        ],
        responses=ApprovalAnswerSerializer,
    )
    def get(self, request, approval_id: str):
        raw = request.query_params.get("wait", "0").strip() or "0"
        try:
            wait = float(raw)
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= MAX_WAIT_S:  # NaN fails this too
            raise exceptions.ValidationError(
                {"wait": [f"Must be a number of seconds from 0 to {MAX_WAIT_S}."]}
            )
        try:
            approval = approval_get(project_id=request.user.project_id, public_id=approval_id)
        except Approval.DoesNotExist:
            raise exceptions.NotFound("No such approval request.") from None
        if wait > 0:
            approval, admitted = approval_wait(approval, wait_s=wait)
        else:
            approval, admitted = approval_current(approval), True
        headers = {} if admitted else {"Retry-After": str(BUSY_RETRY_AFTER_S)}
        return Response(_answer(approval), headers=headers)


APPROVAL_REPORT_PARAMS = [
    OpenApiParameter("project", str, required=True, description="Project slug"),
    OpenApiParameter("since", str, description="ISO 8601; default: 24 hours before until"),
    OpenApiParameter("until", str, description="ISO 8601; default: now"),
]


class ApprovalReportView(APIView):
    """Approval requests made in the window per status, and the tool calls started in it
    that ran outside their approval (unknown or unapproved approval, another tool, other
    arguments), latest first, with the trace and span ids to link to."""

    @extend_schema(parameters=APPROVAL_REPORT_PARAMS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        project, since, until = project_window(request, {})
        report = approval_report(project_id=project.pk, since=since, until=until)
        return Response({"project": project.slug, "since": since, "until": until, **report})
