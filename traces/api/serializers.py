from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from traces.display import known_cost
from traces.models import Span, Trace


@extend_schema_field(serializers.DecimalField(max_digits=20, decimal_places=10, allow_null=True))
class KnownCostField(serializers.DecimalField):
    """A trace's cost, null when none of its model calls had a known price (never a
    "0.0000000000" that would read as free); `unpriced_count` says how many had none."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 20)
        kwargs.setdefault("decimal_places", 10)
        kwargs.setdefault("coerce_to_string", True)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("read_only", True)
        super().__init__(source="*", **kwargs)

    def to_representation(self, trace):
        value = known_cost(trace.cost_usd, trace.unpriced_count)
        return None if value is None else super().to_representation(value)


class TraceSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    cost_usd = KnownCostField()
    total_tokens = serializers.IntegerField(read_only=True)

    class Meta:
        model = Trace
        fields = [
            "project",
            "trace_id",
            "name",
            "agent",
            "agent_version",
            "service_name",
            "started_at",
            "ended_at",
            "duration_ms",
            "span_count",
            "error_count",
            "llm_call_count",
            "tool_call_count",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "reasoning_tokens",
            "total_tokens",
            "cost_usd",
            "unpriced_count",
            "status",
            "session_id",
            "user_id",
            "root_span_id",
        ]
        read_only_fields = fields


class SpanSerializer(serializers.ModelSerializer):
    tool = serializers.CharField(source="tool_name", read_only=True)

    class Meta:
        model = Span
        fields = [
            "span_id",
            "parent_span_id",
            "name",
            "kind",
            "step",
            "role",
            "started_at",
            "ended_at",
            "duration_ms",
            "status",
            "status_message",
            "error_type",
            "agent",
            "model",
            "provider",
            "tool",
            "tool_call_id",
            "tool_arguments",
            "tool_result",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost_usd",
            "computed_cost_usd",
            "cost_source",
            "session_id",
            "user_id",
            "service_name",
            "attributes",
            "events",
            "links",
            "resource",
            "scope",
        ]
        read_only_fields = fields


class TraceDetailSerializer(TraceSerializer):
    spans = SpanSerializer(many=True, read_only=True, source="span_list")

    class Meta(TraceSerializer.Meta):
        fields = [*TraceSerializer.Meta.fields, "spans"]
        read_only_fields = fields
