from datetime import UTC, datetime

from django.contrib import admin, messages
from django.utils.html import format_html

from budgets import admin_channels  # noqa: F401  (channels and deliveries)
from budgets.evaluate import budget_evaluate, period_label
from budgets.formatting import format_value
from budgets.models import Alert, BudgetEnvelope, StateChange
from budgets.validation import EnvelopeForm

_STATE_COLOURS = {"ok": "#1a7f37", "warning": "#9a6700", "exceeded": "#cf222e"}


def _state_badge(state: str, label: str):
    return format_html(
        '<strong style="color:{}">{}</strong>', _STATE_COLOURS.get(state, "inherit"), label
    )


@admin.register(BudgetEnvelope)
class BudgetEnvelopeAdmin(admin.ModelAdmin):
    form = EnvelopeForm
    list_display = [
        "name",
        "project",
        "metric",
        "period_display",
        "state_display",
        "usage_display",
        "forecast_display",
        "last_evaluated_at",
        "enabled",
    ]
    list_filter = ["state", "metric", "period", "enabled", "project"]
    search_fields = ["name", "description", "agent", "model", "service_name", "attribute_value"]
    list_select_related = ["project"]
    filter_horizontal = ["channels"]
    actions = ["evaluate_now"]
    evaluation_fields = [
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
    readonly_fields = evaluation_fields
    fieldsets = [
        (None, {"fields": ["project", "name", "description", "enabled"]}),
        (
            "Limit",
            {
                "fields": [
                    "metric",
                    "limit",
                    "period",
                    "rolling_minutes",
                    "timezone",
                    "thresholds",
                    "forecast",
                ],
                "description": (
                    "Cost and tokens suit every period; p95 latency and error rate the "
                    "hour, day or a rolling window; per-run caps the hour or day. Rolling "
                    "windows move in 15-minute steps (the rollup bucket)."
                ),
            },
        ),
        (
            "Scope",
            {
                "fields": ["agent", "model", "service_name", "attribute", "attribute_value"],
                "description": (
                    "Blank means any. A user or session budget is computed from whole runs, "
                    "so it cannot be narrowed to a model."
                ),
            },
        ),
        ("Alerting", {"fields": ["channels"]}),
        ("Last evaluation", {"fields": evaluation_fields}),
    ]

    @admin.display(description="Period", ordering="period")
    def period_display(self, obj):
        if obj.period == BudgetEnvelope.Period.ROLLING:
            return f"rolling {obj.rolling_minutes} min"
        return f"{obj.get_period_display().lower()} ({obj.timezone})"

    @admin.display(description="State", ordering="state")
    def state_display(self, obj):
        return _state_badge(obj.state, obj.get_state_display())

    @admin.display(description="Last value / limit")
    def usage_display(self, obj):
        limit = format_value(obj.metric, obj.limit)
        if obj.last_value is None:
            return f"— / {limit}"
        pct = obj.last_value * 100 / obj.limit if obj.limit else 0
        return f"{format_value(obj.metric, obj.last_value)} / {limit} ({pct:.0f} %)"

    @admin.display(description="Forecast")
    def forecast_display(self, obj):
        return format_value(obj.metric, obj.last_forecast) if obj.last_forecast else "—"

    @admin.action(description="Evaluate selected budgets now")
    def evaluate_now(self, request, queryset):
        now = datetime.now(UTC)
        for envelope in queryset.select_related("project"):
            if not envelope.enabled:
                self.message_user(
                    request, f"{envelope.name}: disabled, not evaluated.", messages.WARNING
                )
                continue
            try:
                ev = budget_evaluate(envelope=envelope, now=now)
            except ValueError as exc:
                self.message_user(request, f"{envelope.name}: {exc}", messages.ERROR)
                continue
            where = period_label(
                period=envelope.period,
                start=ev.period_start,
                end=ev.period_end,
                tz=envelope.timezone,
            )
            text = (
                f"{envelope.name}: {ev.state}, {format_value(envelope.metric, ev.value)} of "
                f"{format_value(envelope.metric, ev.limit)} ({ev.percent:.0f} %, {where})"
            )
            if ev.state_change:
                text += f"; was {ev.state_change.old_state}"
            if ev.alerts:
                text += f"; {len(ev.alerts)} new alert(s)"
            level = {"ok": messages.SUCCESS, "warning": messages.WARNING}.get(
                ev.state, messages.ERROR
            )
            self.message_user(request, text, level)


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the evaluator only: viewable, never edited here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StateChange)
class StateChangeAdmin(_ReadOnlyAdmin):
    list_display = ["created_at", "envelope", "transition", "value", "limit", "period_start"]
    list_filter = ["new_state", "old_state", "envelope__project"]
    search_fields = ["envelope__name"]
    list_select_related = ["envelope"]
    date_hierarchy = "created_at"

    @admin.display(description="Change")
    def transition(self, obj):
        return format_html(
            "{} → {}",
            _state_badge(obj.old_state, obj.get_old_state_display()),
            _state_badge(obj.new_state, obj.get_new_state_display()),
        )


@admin.register(Alert)
class AlertAdmin(_ReadOnlyAdmin):
    list_display = ["created_at", "envelope", "kind", "threshold", "status", "message"]
    list_filter = ["status", "kind", "project"]
    search_fields = ["message", "envelope__name"]
    list_select_related = ["envelope"]
    date_hierarchy = "created_at"
