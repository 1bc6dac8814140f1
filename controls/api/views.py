"""Tool contracts API.

Authentication (the API's defaults): a login session, HTTP Basic, a personal token or a
project's ingest key, which reads its own project's contracts and never writes. Admins
of a project (and staff users) register contracts; a version, once registered, is
changed through `manage.py contracts apply`.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

from controls.api.serializers import ToolContractSerializer
from controls.models import ToolContract
from controls.selectors import contract_list_for_user
from controls.services import contract_upsert
from traces.models import Membership
from traces.selectors import project_role_for_user


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
