"""`GET /api/agents/readiness/?project=&agent=&days=`: the production readiness checklist of
a project's agents (`controls.readiness`), the same items the Agents page shows."""

from __future__ import annotations

from datetime import UTC

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from controls.readiness import MAX_DAYS, agent_readiness, readiness_window
from traces.selectors import project_get_for_user

DEFAULT_DAYS = 14
PARAMS = [
    OpenApiParameter("project", str, required=True, description="Project slug"),
    OpenApiParameter("agent", str, description="One agent; default: every agent that ran"),
    OpenApiParameter(
        "days", int, description=f"UTC days ending today, 1–{MAX_DAYS}; default {DEFAULT_DAYS}"
    ),
]


class ReadinessView(APIView):
    """For each agent: the seven controls and the four anti-patterns, each with `met`, the
    evidence in words, numerator, denominator, percentage and a link."""

    @extend_schema(parameters=PARAMS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        slug = params.get("project", "").strip()
        if not slug:
            errors["project"] = ["Required: a project slug."]
        agent = params.get("agent", "").strip()
        if len(agent) > 200 or "\x00" in agent:
            errors["agent"] = ["At most 200 characters, no NUL."]
        raw_days = params.get("days", "").strip() or str(DEFAULT_DAYS)
        days = int(raw_days) if raw_days.isascii() and raw_days.isdigit() else 0
        if not 1 <= days <= MAX_DAYS:
            errors["days"] = [f"A whole number of days from 1 to {MAX_DAYS}."]
        if errors:
            raise exceptions.ValidationError(errors)
        project = project_get_for_user(user=request.user, slug=slug)
        since, until = readiness_window(days=days, today=timezone.now().astimezone(UTC).date())
        found = agent_readiness(
            project=project, since=since, until=until, agents=[agent] if agent else None
        )
        return Response(
            {
                "project": project.slug,
                "since": since,
                "until": until,
                "agents": [
                    {"agent": name, "items": [item.as_dict() for item in items]}
                    for name, items in found.items()
                ],
            }
        )
