"""POST /api/outcomes/: KPI and eval values known only after a run ended."""

from __future__ import annotations

import math

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from traces.api.authentication import writable_project_id
from traces.models import Outcome
from traces.services import outcomes_record

MAX_ITEMS = 1000


class OutcomeItemSerializer(serializers.Serializer):
    trace_id = serializers.RegexField(
        r"^[0-9a-fA-F]{32}$", error_messages={"invalid": "A trace id is 32 hex characters."}
    )
    name = serializers.SlugField(max_length=100)
    value = serializers.JSONField(help_text="A number; true/false count as 1/0")
    kind = serializers.ChoiceField(choices=Outcome.Kind.choices, default=Outcome.Kind.KPI)
    recorded_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate_value(self, value):
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise serializers.ValidationError("A finite number (or true/false) is required.")
        return float(value)

    def validate_trace_id(self, value):
        return value.lower()


class OutcomeBatchSerializer(serializers.Serializer):
    project = serializers.SlugField(
        required=False, help_text="Project slug; not needed with a project key"
    )
    outcomes = OutcomeItemSerializer(many=True, allow_empty=False, max_length=MAX_ITEMS)


class OutcomeResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unknown_trace_ids = serializers.ListField(child=serializers.CharField())


class OutcomeBatchView(APIView):
    """Record KPI or eval values of runs, by trace id. Re-posting an outcome updates it;
    trace ids the project does not have are reported back in `unknown_trace_ids`."""

    @extend_schema(request=OutcomeBatchSerializer, responses=OutcomeResultSerializer)
    def post(self, request):
        data = request.data
        if isinstance(data, list):  # a bare list of outcomes is accepted too
            data = {"outcomes": data}
        batch = OutcomeBatchSerializer(data=data)
        batch.is_valid(raise_exception=True)
        project_id = self._project_id(request, batch.validated_data.get("project"))
        result = outcomes_record(project_id=project_id, items=batch.validated_data["outcomes"])
        return Response(
            {
                "created": result.created,
                "updated": result.updated,
                "unknown_trace_ids": result.unknown_trace_ids,
            },
            status=status.HTTP_200_OK,
        )

    def _project_id(self, request, slug: str | None) -> int:
        return writable_project_id(request, slug, what="outcomes")
