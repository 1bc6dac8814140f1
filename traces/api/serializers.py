from rest_framework import serializers

from traces.models import Span, Trace


class TraceSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    cost_usd = serializers.DecimalField(max_digits=20, decimal_places=10, coerce_to_string=True)
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
