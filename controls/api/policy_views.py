"""Policy gates over the API.

`POST /api/policy/check`: may this agent call this tool now? Answered with the project key
from the project's active Cedar policies (see controls/policies.py); every answer is recorded.

`/api/policies/`: the project's versions (members and its key read; the project's admins,
never a key, save a new version), and `POST /api/policy/try`: what a draft text, or the
active version, decides for a sample request, recorded nowhere.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, parsers, serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from controls.api.serializers import (
    PolicyRequestSerializer,
    PolicyTryAnswerSerializer,
    PolicyTrySerializer,
    PolicyVersionCreateSerializer,
    PolicyVersionSerializer,
    PolicyVersionSummarySerializer,
)
from controls.models import PolicyDecision, PolicyVersion
from controls.policies import (
    policy_check,
    policy_try,
    policy_version_create,
    policy_version_get,
    policy_version_list,
)
from traces.models import Membership, Project
from traces.selectors import project_get_for_user, project_role_for_user


class JSONParser(parsers.JSONParser):
    """DRF's, with a body nested past the interpreter's recursion limit answered 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None


PARSERS = [JSONParser, parsers.FormParser, parsers.MultiPartParser]


def _is_project_key(user) -> bool:
    return getattr(user, "key_id", None) is not None


class ProjectKeyOnly(BasePermission):
    """The check answers for one project: the one whose key asks."""

    message = "This endpoint takes a project key (Authorization: Bearer <key>)."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and _is_project_key(user))


class PolicyCheckSerializer(PolicyRequestSerializer):
    phase = serializers.CharField(
        max_length=16,
        required=False,
        allow_blank=True,
        default="",
        help_text="Recorded only: the phase used is the one the console declares",
    )


class PolicyAnswerSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=PolicyDecision.Decision.choices)
    policy_ids = serializers.ListField(child=serializers.CharField())
    policy_version = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    decision_id = serializers.UUIDField()


class PolicyCheckView(APIView):
    """Allow, deny or escalate one tool call. With no active policy, or for an agent the
    console declares paused, the answer is deny."""

    permission_classes = [ProjectKeyOnly]
    parser_classes = PARSERS

    @extend_schema(request=PolicyCheckSerializer, responses=PolicyAnswerSerializer)
    def post(self, request):
        question = PolicyCheckSerializer(data=request.data)
        question.is_valid(raise_exception=True)
        answer = policy_check(project_id=request.user.project_id, **question.validated_data)
        return Response(
            {
                "decision": answer.decision,
                "policy_ids": answer.policy_ids,
                "policy_version": answer.policy_version,
                "reason": answer.reason,
                "decision_id": answer.decision_id,
            }
        )


# ------------------------------------------------------------------ versions and tries

PROJECT_PARAM = OpenApiParameter(
    "project", str, description="Project slug (with a project key: its project by default)"
)


def _project(request) -> Project:
    """The project `?project=` names (one the caller can see, else 404); a project key's
    own project when none is named."""
    slug = request.query_params.get("project", "")
    if not slug and isinstance(request.data, dict):
        slug = request.data.get("project", "")
    if not isinstance(slug, str):
        raise exceptions.ValidationError({"project": ["Must be a project slug."]})
    slug = slug.strip()
    if not slug:
        if _is_project_key(request.user):
            return Project.objects.get(pk=request.user.project_id)
        raise exceptions.ValidationError({"project": ["Required: a project slug."]})
    return project_get_for_user(user=request.user, slug=slug)


def _text_errors(exc: DjangoValidationError) -> exceptions.ValidationError:
    errors = exc.message_dict
    if "__all__" in errors:
        errors["non_field_errors"] = errors.pop("__all__")
    return exceptions.ValidationError(errors)


@extend_schema(parameters=[PROJECT_PARAM])
class PolicyVersionListView(generics.ListCreateAPIView):
    """The versions of a project's policies, newest first (without their text). A create
    saves a new version, which becomes the active one: the project's admins only (and
    staff), never a project key; the text is validated against the schema first."""

    parser_classes = PARSERS

    def get_serializer_class(self):
        if self.request.method == "POST":
            return PolicyVersionCreateSerializer
        return PolicyVersionSummarySerializer

    def get_queryset(self):
        return policy_version_list(project=_project(self.request))

    @extend_schema(request=PolicyVersionCreateSerializer, responses={201: PolicyVersionSerializer})
    def post(self, request, *args, **kwargs):
        if _is_project_key(request.user):
            raise exceptions.PermissionDenied(
                "A project key may read its project's policies, never change them."
            )
        project = _project(request)
        if project_role_for_user(user=request.user, project=project) != Membership.Role.ADMIN:
            raise exceptions.PermissionDenied("Only the project's admins save policies.")
        data = PolicyVersionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            version = policy_version_create(
                project=project,
                text=data.validated_data["text"],
                created_by=request.user.get_username(),
            )
        except DjangoValidationError as exc:
            raise _text_errors(exc) from None
        return Response(PolicyVersionSerializer(version).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[PROJECT_PARAM])
class PolicyVersionDetailView(generics.RetrieveAPIView):
    """One version of a project's policies, with its text."""

    serializer_class = PolicyVersionSerializer

    def get_object(self):
        try:
            return policy_version_get(project=_project(self.request), number=self.kwargs["number"])
        except PolicyVersion.DoesNotExist:
            raise exceptions.NotFound("No such policy version.") from None


class PolicyTryView(APIView):
    """What a draft text (or, without one, the active version) decides for a sample
    request: the check's answer, recorded nowhere. Members of the project may try."""

    parser_classes = PARSERS

    @extend_schema(
        parameters=[PROJECT_PARAM],
        request=PolicyTrySerializer,
        responses=PolicyTryAnswerSerializer,
    )
    def post(self, request):
        project = _project(request)
        question = PolicyTrySerializer(data=request.data)
        question.is_valid(raise_exception=True)
        data = dict(question.validated_data)
        try:
            answer = policy_try(project=project, **data)
        except DjangoValidationError as exc:
            raise _text_errors(exc) from None
        return Response(
            {
                "decision": answer.decision,
                "policy_ids": answer.policy_ids,
                "reason": answer.reason,
                "phase": answer.phase,
                "policy_version": answer.policy_version,
            }
        )
