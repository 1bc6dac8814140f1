"""Tool contract representations. Validation is `controls.services.contract_clean`'s,
re-raised as DRF field errors."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from controls.models import PolicyDecision, PolicyVersion, ToolContract
from controls.policies import MAX_TEXT
from controls.services import FIELDS, contract_clean
from traces.models import Phase
from traces.selectors import project_list_for_user


class ToolContractSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", queryset=ToolContract.objects.none())
    arguments_schema = serializers.JSONField(required=False)
    result_schema = serializers.JSONField(required=False)

    class Meta:
        model = ToolContract
        fields = ["id", "project", *FIELDS, "created_at"]
        read_only_fields = ["created_at"]
        # The (project, name, version) clash is answered by the view with a clear message.
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        # Another project's slug reads as "does not exist", never "forbidden".
        if request is not None:
            fields["project"].queryset = project_list_for_user(user=request.user)
        return fields

    def validate(self, attrs):
        data = {k: v for k, v in attrs.items() if k in FIELDS}
        try:
            cleaned = contract_clean(data)
        except DjangoValidationError as exc:
            errors = exc.message_dict
            if "__all__" in errors:
                errors["non_field_errors"] = errors.pop("__all__")
            raise serializers.ValidationError(errors) from None
        return {**attrs, **cleaned}


# ------------------------------------------------------------------ policies

MAX_ARGUMENT_DEPTH = 32


def _depth(value) -> int:
    """How deeply a JSON value nests (a scalar is 0), counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


class PolicyRequestSerializer(serializers.Serializer):
    """One tool call an agent asks about: what `POST /api/policy/check` takes and a
    sample request of `POST /api/policy/try`."""

    agent = serializers.CharField(max_length=200)
    agent_version = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default=""
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

    def validate_arguments(self, value):
        if _depth(value) > MAX_ARGUMENT_DEPTH:
            raise serializers.ValidationError(f"Nests at most {MAX_ARGUMENT_DEPTH} levels.")
        return value


class PolicyTrySerializer(PolicyRequestSerializer):
    text = serializers.CharField(
        max_length=MAX_TEXT,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        default="",
        help_text="Cedar policies to try (a draft); blank: the active version",
    )
    phase = serializers.ChoiceField(
        choices=[p.value for p in Phase if p != Phase.HUMAN],
        required=False,
        allow_blank=True,
        default="",
        help_text="The phase to try the request in; blank: the one the console declares",
    )


class PolicyTryAnswerSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=PolicyDecision.Decision.choices)
    policy_ids = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField()
    phase = serializers.CharField(help_text="The phase the request was decided in")
    policy_version = serializers.IntegerField(
        allow_null=True, help_text="The active version tried; null for a draft text"
    )


class PolicyVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PolicyVersion
        fields = ["number", "active", "created_by", "created_at", "text"]
        read_only_fields = fields


class PolicyVersionSummarySerializer(PolicyVersionSerializer):
    class Meta(PolicyVersionSerializer.Meta):
        fields = ["number", "active", "created_by", "created_at"]
        read_only_fields = fields


class PolicyVersionCreateSerializer(serializers.Serializer):
    text = serializers.CharField(
        max_length=MAX_TEXT, trim_whitespace=False, help_text="Cedar policies"
    )
