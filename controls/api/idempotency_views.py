"""Idempotency and retries of a project's runs over a window, scoped and validated like
the contract violations (`controls.api.views.ViolationsView`)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from controls.api.views import project_window
from controls.idempotency import (
    duplicate_side_effects,
    retried_model_cost,
    retry_storms,
    unkeyed_retries,
)

PARAMS = [
    OpenApiParameter("project", str, required=True, description="Project slug"),
    OpenApiParameter("since", str, description="ISO 8601; default: 24 hours before until"),
    OpenApiParameter("until", str, description="ISO 8601; default: now"),
]


class IdempotencyView(APIView):
    """Duplicate side effects, retried side-effecting calls without a key, retry storms and
    the cost of retried model calls, each with the trace and span ids to link to."""

    @extend_schema(parameters=PARAMS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        project, since, until = project_window(request, {})
        window = {"project_id": project.pk, "since": since, "until": until}
        costs = [{**row, "cost_usd": str(row["cost_usd"])} for row in retried_model_cost(**window)]
        return Response(
            {
                "project": project.slug,
                "since": since,
                "until": until,
                "duplicate_side_effects": duplicate_side_effects(**window),
                "unkeyed_retries": unkeyed_retries(**window),
                "retry_storms": retry_storms(**window),
                "retried_model_cost": costs,
            }
        )
