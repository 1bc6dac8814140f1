"""Production controls. Tool contracts: the versioned registry of what a tool accepts and
returns, per project.

A contract is identified by (project, name, version). Its schemas are JSON Schema Draft
2020-12, checked on every write by `controls.services.contract_clean`; a model's `save()`
does not validate, so writes go through the services (or the admin form, which calls
the same function).
"""

from __future__ import annotations

from django.db import models

from traces.models import Project


class ToolContract(models.Model):
    class Risk(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DEPRECATED = "deprecated", "Deprecated"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tool_contracts")
    name = models.CharField(max_length=200, help_text="The tool's name, as on its spans")
    version = models.CharField(max_length=64, help_text='A version string, e.g. "1.2.0"')
    arguments_schema = models.JSONField(
        default=dict, blank=True, help_text="JSON Schema (Draft 2020-12) of the arguments"
    )
    result_schema = models.JSONField(
        default=dict, blank=True, help_text="JSON Schema (Draft 2020-12) of the result"
    )
    side_effects = models.BooleanField(default=False, help_text="Changes something outside")
    requires_idempotency_key = models.BooleanField(default=False)
    risk = models.CharField(max_length=16, choices=Risk.choices, default=Risk.LOW)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name", "version"], name="toolcontract_unique_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class ContractCheck(models.Model):
    """The verdict on one tool span against the contract registry, written once per span.

    Unique on (project, trace_id, span_id) and inserted with ON CONFLICT DO NOTHING, so a
    re-run or two concurrent workers never count a span twice.
    """

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        NO_CONTRACT = "no_contract", "No contract"
        UNKNOWN_VERSION = "unknown_version", "Unknown version"
        ARGUMENTS_INVALID = "arguments_invalid", "Arguments invalid"
        RESULT_INVALID = "result_invalid", "Result invalid"
        IDEMPOTENCY_KEY_MISSING = "idempotency_key_missing", "Idempotency key missing"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    tool_name = models.CharField(max_length=200)
    contract = models.ForeignKey(
        ToolContract, on_delete=models.SET_NULL, null=True, blank=True, related_name="checks"
    )
    contract_version = models.CharField(max_length=64, blank=True, default="")
    agent = models.CharField(max_length=200, blank=True, default="")
    agent_version = models.CharField(max_length=100, blank=True, default="")
    outcome = models.CharField(max_length=32, choices=Outcome.choices)
    detail = models.JSONField(
        default=dict, blank=True, help_text='{"pointer": ..., "message": ...}'
    )
    span_started_at = models.DateTimeField()
    checked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "trace_id", "span_id"], name="contractcheck_unique_span"
            )
        ]
        indexes = [
            # Violation rates read a project's checks by span start over a window.
            models.Index(fields=["project", "span_started_at"], name="contractcheck_window_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.tool_name} {self.span_id}: {self.outcome}"


class PolicyVersion(models.Model):
    """One saved text of a project's Cedar policies. Each save is a new row; old versions
    stay readable. At most one version per project is active (the one the check uses)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="policy_versions")
    number = models.PositiveIntegerField(help_text="1, 2, … per project")
    text = models.TextField(help_text="Cedar policies")
    # A name, not a foreign key: the audit trail outlives the account.
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    active = models.BooleanField(default=False)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "number"], name="policyversion_unique_number"
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(active=True),
                name="policyversion_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"policies v{self.number}"


class PolicyDecision(models.Model):
    """The audit row of one `POST /api/policy/check` answer; `public_id` is its decision_id."""

    class Decision(models.TextChoices):
        ALLOW = "allow", "Allow"
        DENY = "deny", "Deny"
        ESCALATE = "escalate", "Escalate"

    public_id = models.UUIDField(unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="policy_decisions")
    agent = models.CharField(max_length=200)
    agent_version = models.CharField(max_length=64, blank=True, default="")
    phase = models.CharField(max_length=16, blank=True, default="", help_text="As declared")
    claimed_phase = models.CharField(max_length=16, blank=True, default="")
    tool = models.CharField(max_length=200)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    policy_ids = models.JSONField(default=list, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, default="")
    latency_us = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "created_at"], name="policydecision_window_idx")]

    def __str__(self) -> str:
        return f"{self.agent} → {self.tool}: {self.decision}"


class Finding(models.Model):
    """One idempotency or retry problem the detectors found (`controls.findings`), stored
    off the ingest path so pages and the API read a few indexed rows instead of scanning
    spans.

    Unique on (project, kind, fingerprint): detection inserts with ON CONFLICT DO NOTHING,
    then merges what it saw into the locked row, so a re-run or two workers store nothing
    twice and a retry storm that grows updates its row. `spans` holds
    `{"trace_id", "span_id", "started_at"}` of the calls concerned; `first_at` and `last_at`
    are the earliest and latest of their start times (for retried model calls, which are
    kept per agent and 15-minute bucket, the bucket's first and last instant)."""

    class Kind(models.TextChoices):
        DUPLICATE_SIDE_EFFECT = "duplicate_side_effect", "Duplicate side effect"
        UNKEYED_RETRY = "unkeyed_retry", "Unkeyed retry"
        RETRY_STORM = "retry_storm", "Retry storm"
        RETRIED_MODEL_COST = "retried_model_cost", "Retried model calls"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of what identifies it")
    tool = models.CharField(
        max_length=200, blank=True, default="", help_text="Tool, or the span name of a storm"
    )
    agent = models.CharField(max_length=200, blank=True, default="")
    key = models.TextField(blank=True, default="", help_text="The idempotency key")
    trace_ids = models.JSONField(default=list, blank=True)
    spans = models.JSONField(default=list, blank=True)
    count = models.PositiveIntegerField(help_text="Executions, attempts or retried calls")
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    detected_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-last_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind", "fingerprint"], name="finding_unique_fingerprint"
            )
        ]
        indexes = [
            # Pages and the API read a project's findings by span time over a window.
            models.Index(fields=["project", "last_at"], name="finding_window_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.tool or self.agent or self.key}"
