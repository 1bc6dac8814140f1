"""Budgets API representations.

Validation is the admin's: envelopes go through `budgets.validation.envelope_clean`,
channel settings through `budgets.transports.validate_config`; both raise django
ValidationErrors keyed by field, re-raised here as DRF field errors.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from budgets.models import Alert, BudgetEnvelope, Channel, Delivery
from budgets.selectors import envelope_forecast_percent, envelope_usage_percent
from budgets.transports import validate_config
from budgets.validation import envelope_clean
from traces.models import Project

DEFAULT_THRESHOLDS = [50, 80, 100]
# Config keys shown only in the response to the create request (see ChannelSerializer).
SECRET_CONFIG_KEYS = ("secret",)


def _field_errors(exc: DjangoValidationError) -> dict | list:
    return exc.message_dict if hasattr(exc, "error_dict") else exc.messages


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class EnvelopeSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", queryset=Project.objects.all())
    limit = serializers.DecimalField(max_digits=20, decimal_places=6)
    thresholds = serializers.JSONField(
        required=False, help_text="Percentages of the limit that alert, e.g. [50, 80, 100]"
    )
    channels = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Channel.objects.all(), required=False
    )
    usage_percent = serializers.SerializerMethodField()
    forecast_percent = serializers.SerializerMethodField()

    class Meta:
        model = BudgetEnvelope
        fields = [
            "id",
            "project",
            "name",
            "description",
            "enabled",
            "agent",
            "model",
            "service_name",
            "attribute",
            "attribute_value",
            "metric",
            "limit",
            "period",
            "rolling_minutes",
            "timezone",
            "thresholds",
            "forecast",
            "channels",
            "state",
            "state_since",
            "last_value",
            "last_forecast",
            "usage_percent",
            "forecast_percent",
            "last_period_start",
            "last_period_end",
            "last_evaluated_at",
            "snoozed_until",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "snoozed_until",
            "state",
            "state_since",
            "last_value",
            "last_forecast",
            "last_period_start",
            "last_period_end",
            "last_evaluated_at",
            "created_at",
            "updated_at",
        ]
        # (project, name) is checked in validate() so the error names the field.
        validators: list = []

    def get_usage_percent(self, obj) -> float | None:
        return _round(envelope_usage_percent(obj))

    def get_forecast_percent(self, obj) -> float | None:
        return _round(envelope_forecast_percent(obj))

    def validate(self, attrs):
        instance: BudgetEnvelope | None = self.instance

        def current(name, default=None):
            if name in attrs:
                return attrs[name]
            if instance is not None:
                return getattr(instance, name)
            return default

        project = current("project")
        channels = attrs.get("channels")
        if channels is None and instance is not None:
            channels = list(instance.channels.all())
        thresholds = current("thresholds")
        if instance is None and "thresholds" not in attrs:
            thresholds = DEFAULT_THRESHOLDS
        limit = current("limit")
        try:
            cleaned = envelope_clean(
                metric=current("metric", BudgetEnvelope.Metric.COST),
                period=current("period", BudgetEnvelope.Period.MONTH),
                limit=Decimal(limit) if limit is not None else None,
                thresholds=thresholds,
                timezone=current("timezone", "UTC"),
                rolling_minutes=current("rolling_minutes"),
                model=current("model", ""),
                attribute=current("attribute", ""),
                attribute_value=current("attribute_value", ""),
                project_id=project.pk if project else None,
                channels=channels or [],
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError(_field_errors(exc)) from None
        name = current("name")
        taken = BudgetEnvelope.objects.filter(project=project, name=name)
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            raise serializers.ValidationError(
                {"name": ["A budget with this name already exists in this project."]}
            )
        attrs.update(cleaned)
        return attrs


class ChannelSerializer(serializers.ModelSerializer):
    """A channel. Its secret (the webhook signing secret) is write-only: it appears in
    the response to the request that created the channel, never afterwards. An update
    that leaves it out keeps it."""

    project = serializers.SlugRelatedField(slug_field="slug", queryset=Project.objects.all())
    config = serializers.JSONField(help_text="Settings of this kind of channel")
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = [
            "id",
            "project",
            "name",
            "kind",
            "config",
            "has_secret",
            "enabled",
            "disabled_reason",
            "disabled_at",
            "muted_at",
            "created_at",
        ]
        read_only_fields = ["disabled_reason", "disabled_at", "muted_at", "created_at"]
        validators: list = []

    def get_has_secret(self, obj) -> bool:
        return any((obj.config or {}).get(k) for k in SECRET_CONFIG_KEYS)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not self.context.get("reveal_secret") and isinstance(data.get("config"), dict):
            data["config"] = {
                k: v for k, v in data["config"].items() if k not in SECRET_CONFIG_KEYS
            }
        return data

    def validate(self, attrs):
        instance: Channel | None = self.instance
        kind = attrs.get("kind", instance.kind if instance else None)
        if "config" in attrs:
            config = attrs["config"]
        elif instance is not None and kind == instance.kind:
            config = instance.config
        else:
            raise serializers.ValidationError(
                {"config": ["Give the settings of the new kind of channel."]}
            )
        previous = instance.config if instance is not None and kind == instance.kind else None
        try:
            attrs["config"] = validate_config(kind, config, previous=previous)
        except DjangoValidationError as exc:
            errors = _field_errors(exc)
            if isinstance(errors, dict) and set(errors) <= {"kind", "config"}:
                raise serializers.ValidationError(errors) from None
            raise serializers.ValidationError({"config": errors}) from None
        project = attrs.get("project", instance.project if instance else None)
        name = attrs.get("name", instance.name if instance else "")
        taken = Channel.objects.filter(project=project, name=name)
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
            if project != instance.project and instance.envelopes.exists():
                raise serializers.ValidationError(
                    {"project": ["Budgets use this channel; it cannot move to another project."]}
                )
        if taken.exists():
            raise serializers.ValidationError(
                {"name": ["A channel with this name already exists in this project."]}
            )
        return attrs


class DeliverySerializer(serializers.ModelSerializer):
    channel = serializers.IntegerField(source="channel_id")
    channel_name = serializers.CharField(source="channel.name")
    channel_kind = serializers.CharField(source="channel.kind")

    class Meta:
        model = Delivery
        fields = [
            "channel",
            "channel_name",
            "channel_kind",
            "status",
            "attempts",
            "sent_at",
            "last_error",
        ]
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    envelope = serializers.IntegerField(source="envelope_id", read_only=True)
    envelope_name = serializers.CharField(source="envelope.name", read_only=True)
    metric = serializers.CharField(source="envelope.metric", read_only=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    deliveries = DeliverySerializer(many=True, read_only=True)
    thresholds_crossed = serializers.SerializerMethodField(
        help_text="Every threshold this alert's one notification stands for, lowest first"
    )
    covered_by = serializers.PrimaryKeyRelatedField(
        read_only=True,
        help_text="The alert whose notification covered this lower threshold (crossed together)",
    )

    class Meta:
        model = Alert
        fields = [
            "id",
            "project",
            "envelope",
            "envelope_name",
            "metric",
            "kind",
            "threshold",
            "thresholds_crossed",
            "covered_by",
            "status",
            "message",
            "value",
            "limit",
            "period_start",
            "period_end",
            "trace_ids",
            "created_at",
            "acknowledged_by",
            "acknowledged_at",
            "resolved_at",
            "deliveries",
        ]
        read_only_fields = fields

    def get_thresholds_crossed(self, obj) -> list[int]:
        if obj.kind != Alert.Kind.THRESHOLD:
            return []
        return sorted({obj.threshold, *(a.threshold for a in obj.covers.all())})


class AlertsAcknowledgeSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**62),
        min_length=1,
        max_length=500,
        help_text="Ids of the alerts to acknowledge",
    )


class SnoozeSerializer(serializers.Serializer):
    """How long to snooze: `minutes` from now, or `until` a time (one of the two)."""

    minutes = serializers.IntegerField(min_value=1, max_value=90 * 24 * 60, required=False)
    until = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        if ("minutes" in attrs) == ("until" in attrs):
            raise serializers.ValidationError({"minutes": ["Give minutes or until (one of them)."]})
        return attrs


class BudgetCheckSerializer(serializers.Serializer):
    """The question an agent asks before it spends (`POST /api/budgets/check`)."""

    agent = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    session = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    trace_id = serializers.RegexField(
        r"^[0-9a-fA-F]{32}$",
        required=False,
        allow_blank=True,
        default="",
        error_messages={"invalid": "Must be a trace id: 32 hexadecimal characters."},
    )
    estimated_cost = serializers.DecimalField(
        max_digits=20,
        decimal_places=10,
        min_value=Decimal(0),
        required=False,
        default=Decimal(0),
        help_text="USD the caller is about to spend",
    )

    def validate_trace_id(self, value: str) -> str:
        return value.lower()


class BudgetCheckEnvelopeSerializer(serializers.Serializer):
    name = serializers.CharField()
    metric = serializers.ChoiceField(choices=BudgetEnvelope.Metric.choices)
    remaining = serializers.DecimalField(max_digits=24, decimal_places=10)
    state = serializers.CharField()


class BudgetCheckAnswerSerializer(serializers.Serializer):
    allow = serializers.BooleanField()
    reason = serializers.ChoiceField(choices=["ok", "budget_exhausted", "run_cap_exceeded"])
    envelopes = BudgetCheckEnvelopeSerializer(many=True)
