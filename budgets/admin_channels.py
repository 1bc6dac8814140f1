"""Admin for alert channels and their deliveries.

Registered on import; `budgets/admin.py` imports this module so that autodiscovery
finds it.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Max
from django.utils.html import format_html, format_html_join

from budgets.models import Channel, Delivery, DeliveryAttempt
from budgets.notify import channel_enable, channel_send_test
from budgets.transports import REGISTRY, TransportError, config_validate

RECENT_ATTEMPTS = 20


def _config_help() -> str:
    examples = "; ".join(
        f"{kind}: {json.dumps(transport.example)}" for kind, transport in REGISTRY.items()
    )
    return (
        "JSON settings of the channel's kind. "
        f"Examples — {examples}. A webhook without a secret gets a generated one."
    )


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["project", "name", "kind", "config", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["config"].help_text = _config_help()
        self.config_notices: list[str] = []

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if not kind or "config" not in cleaned:
            return cleaned
        instance = self.instance
        previous = instance.config if instance.pk and instance.kind == kind else None
        try:
            result = config_validate(kind, cleaned["config"], previous=previous)
        except ValidationError as exc:
            for key, errors in exc.message_dict.items():
                if key in {"kind", "config"}:
                    self.add_error(key, errors)
                else:
                    self.add_error("config", [f"{key}: {error}" for error in errors])
            return cleaned
        cleaned["config"] = result.config
        self.config_notices = result.notices
        return cleaned


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "project", "kind", "enabled", "disabled_reason_short", "last_attempt"]
    list_filter = ["kind", "enabled", "project"]
    list_select_related = ["project"]
    search_fields = ["name", "project__slug", "project__name"]
    actions = ["send_test_alert", "enable_channels"]
    readonly_fields = ["disabled_reason", "disabled_at", "created_at", "recent_attempts"]
    fieldsets = [
        (None, {"fields": ["project", "name", "kind", "config", "enabled"]}),
        ("State", {"fields": ["disabled_reason", "disabled_at", "created_at"]}),
        ("Last delivery attempts", {"fields": ["recent_attempts"]}),
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(last_attempt_at=Max("deliveries__log__started_at"))
        )

    @admin.display(description="Disabled because")
    def disabled_reason_short(self, obj: Channel) -> str:
        if obj.enabled:
            return ""
        reason = obj.disabled_reason or "disabled by hand"
        return reason if len(reason) <= 80 else reason[:79] + "…"

    @admin.display(description="Last attempt", ordering="last_attempt_at")
    def last_attempt(self, obj: Channel):
        return getattr(obj, "last_attempt_at", None)

    @admin.display(description="Attempts")
    def recent_attempts(self, obj: Channel) -> str:
        if obj.pk is None:
            return "—"
        attempts = (
            DeliveryAttempt.objects.filter(delivery__channel=obj)
            .select_related("delivery")
            .order_by("-started_at")[:RECENT_ATTEMPTS]
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td></tr>",
            (
                (
                    f"{a.started_at:%Y-%m-%d %H:%M:%S}",
                    a.delivery.alert_id,
                    "ok" if a.ok else ("failed, permanent" if a.permanent else "failed"),
                    a.status_code or "",
                    f"{a.duration_ms:.0f}",
                    a.error,
                )
                for a in attempts
            ),
        )
        if not rows:
            return "No attempts yet."
        return format_html(
            "<table><thead><tr><th>Started (UTC)</th><th>Alert</th><th>Result</th>"
            "<th>Code</th><th>Duration</th><th>Error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def save_model(self, request, obj, form, change):
        if obj.enabled and (obj.disabled_at or obj.disabled_reason):
            # Enabled again by hand: the old reason no longer applies.
            obj.disabled_reason, obj.disabled_at = "", None
        super().save_model(request, obj, form, change)
        for notice in getattr(form, "config_notices", []):
            self.message_user(request, notice, messages.WARNING)

    @admin.action(description="Send a test alert")
    def send_test_alert(self, request, queryset):
        for channel in queryset.select_related("project"):
            try:
                duration_ms = channel_send_test(channel=channel)
            except TransportError as exc:
                hint = (
                    " This error is permanent: fix the channel's settings."
                    if exc.permanent
                    else " This error is temporary: alerts would be retried."
                )
                self.message_user(
                    request, f"{channel}: test failed — {exc.message}.{hint}", messages.ERROR
                )
                continue
            if channel.enabled:
                self.message_user(
                    request, f"{channel}: test alert sent ({duration_ms:.0f} ms).", messages.SUCCESS
                )
            else:
                self.message_user(
                    request,
                    f"{channel}: test alert sent ({duration_ms:.0f} ms), but the channel is "
                    "disabled: enable it to receive alerts.",
                    messages.WARNING,
                )

    @admin.action(description="Enable selected channels")
    def enable_channels(self, request, queryset):
        count = 0
        for channel in queryset.filter(enabled=False):
            channel_enable(channel=channel)
            count += 1
        self.message_user(request, f"{count} channel(s) enabled.", messages.SUCCESS)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["started_at", "ok", "permanent", "status_code", "duration_ms", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Read-only: deliveries are written by the delivery tasks alone."""

    list_display = ["pk", "alert", "channel", "status", "attempts", "sent_at", "created_at"]
    list_filter = ["status", "channel__kind", "channel__project"]
    list_select_related = ["alert", "channel"]
    search_fields = ["channel__name", "alert__message"]
    fields = [
        "alert",
        "channel",
        "status",
        "attempts",
        "claimed_at",
        "sent_at",
        "last_error",
        "created_at",
    ]
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
