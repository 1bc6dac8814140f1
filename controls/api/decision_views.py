"""Policy decisions of a project over a window, from the traces and from the check API,
scoped and validated like the contract violations (`controls.api.views.ViolationsView`)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from controls.api.views import project_window
from controls.decisions import policy_decision_report

PARAMS = [
    OpenApiParameter("project", str, required=True, description="Project slug"),
    OpenApiParameter("since", str, description="ISO 8601; default: 24 hours before until"),
    OpenApiParameter("until", str, description="ISO 8601; default: now"),
]


class DecisionsView(APIView):
    """Allow, deny and escalate counts and rates per policy and policy version (each
    decision counted once, whether the API made it, a span reports it, or both), their
    latency p50/p95, and the runs where a side-effecting tool ran with no policy decision
    before it, with the trace and span ids to link to."""

    @extend_schema(parameters=PARAMS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        project, since, until = project_window(request, {})
        report = policy_decision_report(project_id=project.pk, since=since, until=until)
        return Response({"project": project.slug, "since": since, "until": until, **report})
