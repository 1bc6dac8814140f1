"""Tool contracts API.

Authentication (the API's defaults): a login session, HTTP Basic, a personal token or a
project's ingest key, which reads its own project's contracts and never writes. Admins
of a project (and staff users) register contracts; a version, once registered, is
changed through `manage.py contracts apply`.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from controls.api.serializers import ToolContractSerializer
from controls.models import ToolContract
from controls.selectors import (
    VIOLATION_BY,
    contract_list_for_user,
    contract_violation_rates,
    uncontracted_tools,
)
from controls.services import contract_upsert
from traces.models import Membership
from traces.selectors import TraceFilters, project_get_for_user, project_role_for_user


def _is_project_key(user) -> bool:
    return getattr(user, "key_id", None) is not None


class MembersReadAdminsWrite(BasePermission):
    """Reads for anyone authenticated (scoped by the queryset); writes by people, not keys.
    The project admin check needs the project in the body, so the view makes it."""

    message = "A project key may read its project's contracts, never change them."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or not _is_project_key(request.user)


@extend_schema(
    parameters=[
        OpenApiParameter("project", str, description="Project slug"),
        OpenApiParameter("name", str, description="Tool name"),
        OpenApiParameter("status", str, enum=list(ToolContract.Status.values)),
    ]
)
class ContractListView(generics.ListCreateAPIView):
    """Tool contracts of the projects you can see; project admins register new ones.
    The answer to a create lists the changes against the latest earlier version."""

    serializer_class = ToolContractSerializer
    permission_classes = [MembersReadAdminsWrite]

    def get_queryset(self):
        params = self.request.query_params
        qs = contract_list_for_user(
            user=self.request.user, project_slug=params.get("project", "").strip()
        )
        if name := params.get("name", "").strip():
            qs = qs.filter(name=name)
        if state := params.get("status", "").strip():
            if state not in ToolContract.Status.values:
                raise exceptions.ValidationError(
                    {"status": [f"Must be one of {', '.join(ToolContract.Status.values)}."]}
                )
            qs = qs.filter(status=state)
        return qs

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        project = data.pop("project")
        if project_role_for_user(user=request.user, project=project) != Membership.Role.ADMIN:
            raise exceptions.PermissionDenied("Only the project's admins register contracts.")
        if ToolContract.objects.filter(
            project=project, name=data["name"], version=data["version"]
        ).exists():
            raise exceptions.ValidationError(
                {"version": [f"{data['name']} {data['version']} is already registered."]}
            )
        result = contract_upsert(project=project, data=data)
        body = self.get_serializer(result.contract).data
        body["changes_from"] = result.plan.against
        body["changes"] = [c.as_dict() for c in result.plan.changes]
        return Response(body, status=status.HTTP_201_CREATED)


class ContractDetailView(generics.RetrieveAPIView):
    """One tool contract."""

    serializer_class = ToolContractSerializer
    permission_classes = [MembersReadAdminsWrite]

    def get_queryset(self):
        return contract_list_for_user(user=self.request.user)


VIOLATION_PARAMS = [
    OpenApiParameter("project", str, required=True, description="Project slug"),
    OpenApiParameter("since", str, description="ISO 8601; default: 24 hours before until"),
    OpenApiParameter("until", str, description="ISO 8601; default: now"),
    OpenApiParameter(
        "by",
        str,
        description=f"Comma-separated, some of {', '.join(VIOLATION_BY)} (default: all)",
    ),
]
MAX_VIOLATION_WINDOW = timedelta(days=90)


def project_window(request, errors: dict[str, list[str]]):
    """The project (`?project=`, one of the user's, else 404) and the window (`?since=`,
    `?until=`; the last 24 h by default, at most 90 days) of a controls report. Raises a
    field-level 400 with `errors`, plus any of its own."""
    params = request.query_params
    filters = TraceFilters.from_params(
        {"since": params.get("since", ""), "until": params.get("until", "")}
    )
    for message in filters.errors or []:
        errors.setdefault(message.split(" ", 1)[0], []).append(message)
    slug = params.get("project", "").strip()
    if not slug:
        errors["project"] = ["Required: a project slug."]
    until = filters.until or timezone.now()
    since = filters.since or until - timedelta(hours=24)
    if "since" not in errors and "until" not in errors:
        if since >= until:
            errors["since"] = ["Must be before until."]
        elif until - since > MAX_VIOLATION_WINDOW:
            errors["since"] = [f"The window is at most {MAX_VIOLATION_WINDOW.days} days."]
    if errors:
        raise exceptions.ValidationError(errors)
    return project_get_for_user(user=request.user, slug=slug), since, until


class ViolationsView(APIView):
    """Contract violation rates of a project's tool calls over a window, per tool, tool
    version, agent and agent version (or the `by` you choose), with the trace ids of the
    offending runs (latest first), and the tools called with no contract."""

    @extend_schema(parameters=VIOLATION_PARAMS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        by = tuple(b.strip() for b in params.get("by", "").split(",") if b.strip())
        by = by or tuple(VIOLATION_BY)
        if any(b not in VIOLATION_BY for b in by):
            errors["by"] = [f"Must be some of {', '.join(VIOLATION_BY)}."]
        project, since, until = project_window(request, errors)
        return Response(
            {
                "project": project.slug,
                "since": since,
                "until": until,
                "by": list(by),
                "rates": contract_violation_rates(project.pk, since, until, by),
                "uncontracted_tools": uncontracted_tools(project.pk, since, until),
            }
        )
