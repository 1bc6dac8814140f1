"""`POST /api/policy/check`: may this agent call this tool now? Answered with the project key
from the project's active Cedar policies (see controls/policies.py); every answer is recorded."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from controls.models import PolicyDecision
from controls.policies import policy_check


class ProjectKeyOnly(BasePermission):
    """The check answers for one project: the one whose key asks."""

    message = "This endpoint takes a project key (Authorization: Bearer <key>)."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "key_id", None) is not None)


class PolicyCheckSerializer(serializers.Serializer):
    agent = serializers.CharField(max_length=200)
    agent_version = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default=""
    )
    phase = serializers.CharField(
        max_length=16,
        required=False,
        allow_blank=True,
        default="",
        help_text="Recorded only: the phase used is the one the console declares",
    )
    tool = serializers.CharField(max_length=200)
    arguments = serializers.DictField(required=False, default=dict)
    amount = serializers.DecimalField(
        max_digits=18, decimal_places=2, min_value=Decimal(0), required=False, default=Decimal(0)
    )
    risk = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    confidence = serializers.DecimalField(
        max_digits=4,
        decimal_places=3,
        min_value=Decimal(0),
        max_value=Decimal(1),
        required=False,
        default=Decimal(0),
    )


class PolicyAnswerSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=PolicyDecision.Decision.choices)
    policy_ids = serializers.ListField(child=serializers.CharField())
    policy_version = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    decision_id = serializers.UUIDField()


class PolicyCheckView(APIView):
    """Allow, deny or escalate one tool call. With no active policy the answer is deny."""

    permission_classes = [ProjectKeyOnly]

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
