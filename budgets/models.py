"""Budget envelopes, their evaluated state and its changes, alerts, notification
channels and every delivery attempt.

Flow: the rollup task keeps `traces.Rollup` current; `budgets.evaluate` computes each
envelope's usage against its limit every minute, records a `StateChange` when the
state moves, and creates at most one `Alert` per envelope, period and threshold (a
unique constraint, so two evaluators cannot both alert). Thresholds crossed together
in one evaluation are notified once: the highest one's alert carries the deliveries
and the lower ones point to it (`Alert.covered_by`). Each notified alert gets one
`Delivery` per channel; delivery tasks claim it with a compare-and-set and log every
`DeliveryAttempt`. A snoozed envelope (`snoozed_until`) or a muted channel
(`muted_at`) still gets its alerts and Delivery rows, marked `skipped` with the reason.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from traces.models import Project


class Channel(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack"
        WEBHOOK = "webhook", "Webhook"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    config = models.JSONField(
        default=dict, help_text="Settings of this kind of channel, validated on every write"
    )
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Muted: receives nothing (its deliveries are recorded as skipped) until unmuted.
    muted_at = models.DateTimeField(null=True, blank=True)
    muted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="channel_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def muted(self) -> bool:
        return self.muted_at is not None


class State(models.TextChoices):
    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    EXCEEDED = "exceeded", "Exceeded"


class BudgetEnvelope(models.Model):
    class Metric(models.TextChoices):
        COST = "cost_usd", "Cost (USD)"
        TOKENS = "tokens", "Tokens (input + output)"
        P95_LATENCY = "p95_run_latency_s", "p95 run latency (s)"
        ERROR_RATE = "error_rate", "Error rate of runs (%)"
        RUN_COST = "run_cost_usd", "Cost of one run (USD) — per-run cap"
        RUN_DURATION = "run_duration_s", "Duration of one run (s) — per-run cap"

    class Period(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"
        WEEK = "week", "Week (Monday to Sunday)"
        MONTH = "month", "Calendar month"
        ROLLING = "rolling", "Rolling window"

    class Attribute(models.TextChoices):
        NONE = "", "—"
        USER = "user_id", "User id"
        SESSION = "session_id", "Session id"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="envelopes")
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True, default="", help_text="Why this budget exists")
    enabled = models.BooleanField(default=True)

    # Scope: the project, optionally narrowed. Blank means "any".
    agent = models.CharField(max_length=200, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    service_name = models.CharField(max_length=200, blank=True, default="")
    attribute = models.CharField(
        max_length=16, choices=Attribute.choices, blank=True, default=Attribute.NONE
    )
    attribute_value = models.CharField(max_length=200, blank=True, default="")

    metric = models.CharField(max_length=24, choices=Metric.choices, default=Metric.COST)
    limit = models.DecimalField(max_digits=20, decimal_places=6)
    period = models.CharField(max_length=16, choices=Period.choices, default=Period.MONTH)
    rolling_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Window length for rolling periods (multiple of 15)"
    )
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA zone the periods are counted in"
    )
    thresholds = models.JSONField(
        default=list, help_text="Percentages of the limit that alert, e.g. [50, 80, 100]"
    )
    forecast = models.BooleanField(
        default=True, help_text="Alert when the current pace would exceed the limit"
    )
    channels = models.ManyToManyField(Channel, blank=True, related_name="envelopes")
    # Snoozed: still evaluated and alerted, but no notification is sent before this time.
    snoozed_until = models.DateTimeField(null=True, blank=True)
    snoozed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Last evaluation (written by budgets.evaluate only).
    state = models.CharField(max_length=16, choices=State.choices, default=State.OK)
    state_since = models.DateTimeField(null=True, blank=True)
    last_value = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    last_forecast = models.DecimalField(max_digits=24, decimal_places=10, null=True, blank=True)
    last_period_start = models.DateTimeField(null=True, blank=True)
    last_period_end = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="envelope_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name

    def snoozed_at(self, now) -> bool:
        return self.snoozed_until is not None and self.snoozed_until > now


class StateChange(models.Model):
    envelope = models.ForeignKey(
        BudgetEnvelope, on_delete=models.CASCADE, related_name="state_changes"
    )
    old_state = models.CharField(max_length=16, choices=State.choices)
    new_state = models.CharField(max_length=16, choices=State.choices)
    value = models.DecimalField(max_digits=24, decimal_places=10)
    limit = models.DecimalField(max_digits=20, decimal_places=6)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["envelope", "-created_at"], name="statechange_env_idx")]

    def __str__(self) -> str:
        return f"{self.envelope}: {self.old_state} → {self.new_state}"


class Alert(models.Model):
    class Kind(models.TextChoices):
        THRESHOLD = "threshold", "Threshold crossed"
        FORECAST = "forecast", "Forecast to exceed"
        RUN_CAP = "run_cap", "Run over its cap"

    class Status(models.TextChoices):
        FIRING = "firing", "Firing"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    envelope = models.ForeignKey(BudgetEnvelope, on_delete=models.CASCADE, related_name="alerts")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    threshold = models.PositiveIntegerField(
        default=0, help_text="Percentage of the limit (0 for forecasts)"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    value = models.DecimalField(max_digits=24, decimal_places=10)
    limit = models.DecimalField(max_digits=20, decimal_places=6)
    message = models.TextField()
    trace_ids = models.JSONField(
        default=list, help_text="Traces that drove the usage (most expensive or offending)"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FIRING)
    # A lower threshold crossed in the same evaluation as a higher one: alerted for its
    # period, but notified only through the highest threshold's alert.
    covered_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="covers"
    )
    created_at = models.DateTimeField()
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Once per envelope, period and threshold, however many evaluators run.
            models.UniqueConstraint(
                fields=["envelope", "period_start", "kind", "threshold"],
                name="alert_once_per_period_threshold",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status", "-created_at"], name="alert_inbox_idx"),
        ]

    def __str__(self) -> str:
        return self.message


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"  # not sent: the budget was snoozed or the channel muted

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One delivery of an alert per channel: a retried task can never send twice.
            models.UniqueConstraint(fields=["alert", "channel"], name="delivery_once_per_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.alert_id} → {self.channel} ({self.status})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="log")
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    ok = models.BooleanField()
    permanent = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"attempt {self.started_at:%H:%M:%S} {'ok' if self.ok else 'failed'}"
