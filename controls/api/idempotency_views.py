"""Idempotency and retries of a project's runs over a window, scoped and validated like
the contract violations (`controls.api.views.ViolationsView`).

Answered from the stored findings (`controls.findings`), not by running the detectors in
the request: they read every side-effecting call of the window and the day before it
into memory, which a 90-day window of a busy project cannot afford per request, and the
Controls page shows the same stored rows, so the two never disagree. The findings are
at most a minute behind (the detection schedule)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from controls.api.views import project_window
from controls.findings import findings_in_window

PARAMS = [
    OpenApiParameter("project", str, required=True, description="Project slug"),
    OpenApiParameter("since", str, description="ISO 8601; default: 24 hours before until"),
    OpenApiParameter("until", str, description="ISO 8601; default: now"),
]


class IdempotencyView(APIView):
    """Duplicate side effects, retried side-effecting calls without a key, retry storms and
    the cost of retried model calls whose calls started in the window, each with the trace
    and span ids to link to."""

    @extend_schema(parameters=PARAMS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        project, since, until = project_window(request, {})
        found = findings_in_window(project_id=project.pk, since=since, until=until)
        costs = [{**row, "cost_usd": str(row["cost_usd"])} for row in found["retried_model_cost"]]
        return Response(
            {
                "project": project.slug,
                "since": since,
                "until": until,
                **found,
                "retried_model_cost": costs,
            }
        )
