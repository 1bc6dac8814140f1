"""Production controls. Tool contracts: the versioned registry of what a tool accepts and
returns, per project.

A contract is identified by (project, name, version). Its schemas are JSON Schema Draft
2020-12, checked on every write by `controls.services.contract_clean`; a model's `save()`
does not validate, so writes go through the services (or the admin form, which calls
the same function).
"""

from __future__ import annotations

from django.conf import settings
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

    Unique on (project, trace_id, span_id, span_started_at), the span's own key, and
    inserted with ON CONFLICT DO NOTHING, so a re-run or two concurrent workers never count
    a span twice. One row per tool span, so it grows with spans: on PostgreSQL it is
    partitioned by day of `span_started_at` like them (migration 0009), and retention drops
    its days with theirs.
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
                fields=["project", "trace_id", "span_id", "span_started_at"],
                name="contractcheck_unique_span_start",
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


# ------------------------------------------------------------------ people in the loop


class Approval(models.Model):
    """A runtime request for a person's yes before an action (`POST /api/approvals/`).

    Bound to what is approved: the SHA-256 of the canonical JSON of the arguments
    (`controls.idempotency.canonical_arguments`). A tool span that runs with this
    approval's id (`agentops.approval.id`) and other arguments is a violation. Expiry is a
    decision too: a pending request past `expires_at` becomes `expired`, never approved.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        EXPIRED = "expired", "Expired"

    public_id = models.UUIDField(unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="approvals")
    trace_id = models.CharField(max_length=32, blank=True, default="")
    span_id = models.CharField(max_length=16, blank=True, default="")
    agent = models.CharField(max_length=200)
    agent_version = models.CharField(max_length=100, blank=True, default="")
    tool = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict, blank=True)
    arguments_hash = models.CharField(max_length=64)
    risk = models.CharField(max_length=16, blank=True, default="")
    confidence = models.DecimalField(max_digits=4, decimal_places=3, null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    # A name, not a foreign key: the audit trail outlives the account.
    decided_by = models.CharField(max_length=150, blank=True, default="")
    note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "status", "expires_at"], name="approval_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.agent} → {self.tool}: {self.status}"


class ReviewRule(models.Model):
    """When a run goes to the review queue on its own, per agent and phase ("" = any)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_rules")
    agent = models.CharField(max_length=200, blank=True, default="", help_text="Empty: any")
    phase = models.CharField(max_length=16, blank=True, default="", help_text="Empty: any")
    min_confidence = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="Below this agentops.confidence a step is reviewed (0..1); empty: never",
    )
    risks = models.JSONField(
        default=list, blank=True, help_text='Risk levels always reviewed, e.g. ["high", "critical"]'
    )
    on_escalation = models.BooleanField(default=True, help_text="An escalation step")
    on_policy_escalate = models.BooleanField(default=True, help_text="A policy decision escalate")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "agent", "phase"], name="reviewrule_unique_scope"
            )
        ]

    def __str__(self) -> str:
        return f"review {self.agent or 'any agent'} in {self.phase or 'any phase'}"


class ReviewSla(models.Model):
    """How long an item of a risk level may wait for a person ("" = any other risk)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_slas")
    risk = models.CharField(max_length=16, blank=True, default="", help_text="Empty: any other")
    minutes = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "risk"], name="reviewsla_unique_risk")
        ]

    def __str__(self) -> str:
        return f"{self.risk or 'any'}: {self.minutes} min"


class ReviewItem(models.Model):
    """One thing waiting for a person: an approval request, or a run that crossed a
    review rule. Claimed with a compare-and-set (one holder), then resolved once."""

    class Source(models.TextChoices):
        APPROVAL = "approval", "Approval request"
        LOW_CONFIDENCE = "low_confidence", "Low confidence"
        HIGH_RISK = "high_risk", "High risk"
        ESCALATION = "escalation", "Escalation step"
        POLICY_ESCALATE = "policy_escalate", "Policy said escalate"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"
        EXPIRED = "expired", "Expired"

    class Resolution(models.TextChoices):
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        OVERRIDDEN = "overridden", "Overridden"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_items")
    source = models.CharField(max_length=16, choices=Source.choices)
    approval = models.OneToOneField(
        Approval, on_delete=models.CASCADE, null=True, blank=True, related_name="review_item"
    )
    trace_id = models.CharField(max_length=32, blank=True, default="")
    span_id = models.CharField(max_length=16, blank=True, default="")
    agent = models.CharField(max_length=200, blank=True, default="")
    agent_version = models.CharField(max_length=100, blank=True, default="")
    phase = models.CharField(max_length=16, blank=True, default="")
    tool = models.CharField(max_length=200, blank=True, default="")
    risk = models.CharField(max_length=16, blank=True, default="")
    confidence = models.DecimalField(max_digits=4, decimal_places=3, null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True, default="")
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    sla_due_at = models.DateTimeField(null=True, blank=True)
    sla_alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # A run's step is flagged once per reason, however often the scan runs.
            models.UniqueConstraint(
                fields=["project", "source", "trace_id", "span_id"],
                condition=models.Q(approval__isnull=True),
                name="reviewitem_flag_once",
            )
        ]
        indexes = [
            models.Index(fields=["project", "status", "created_at"], name="reviewitem_queue_idx"),
            models.Index(fields=["status", "sla_due_at"], name="reviewitem_sla_idx"),
            # Time to decision: the items resolved in a window.
            models.Index(
                fields=["project", "status", "resolved_at"], name="reviewitem_resolved_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()}: {self.agent} {self.tool}".strip()


class DecisionRecord(models.Model):
    """One decision an agent took (`agentops.decision.*` on a span), with what it knew,
    the options, what it chose, and, once it arrives, what a person did (shadow phase)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    agent = models.CharField(max_length=200, blank=True, default="")
    agent_version = models.CharField(max_length=100, blank=True, default="")
    prompt_version = models.CharField(max_length=100, blank=True, default="")
    phase = models.CharField(max_length=16, blank=True, default="")
    context = models.TextField(blank=True, default="")
    options = models.JSONField(default=list, blank=True)
    action = models.CharField(max_length=500, blank=True, default="")
    confidence = models.DecimalField(max_digits=4, decimal_places=3, null=True, blank=True)
    policies = models.JSONField(default=list, blank=True)
    decided_at = models.DateTimeField()
    human_action = models.CharField(max_length=500, blank=True, default="")
    human_action_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "trace_id", "span_id"], name="decisionrecord_unique_span"
            )
        ]
        indexes = [
            models.Index(fields=["project", "decided_at"], name="decisionrecord_time_idx"),
            models.Index(fields=["project", "agent", "action"], name="decisionrecord_action_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.agent}: {self.action}"


class PendingDecisionAction(models.Model):
    """A person's action that arrived before the decision it answers
    (`POST /api/decisions/action` ahead of the span). Kept and joined to the decision when it
    is recorded (`controls.decision_memory.pending_actions_join`), or dropped after
    `PENDING_KEEP`."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16, blank=True, default="")
    action = models.CharField(max_length=500)
    acted_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "trace_id", "span_id"], name="pendingaction_unique_span"
            )
        ]
        indexes = [models.Index(fields=["received_at"], name="pendingaction_age_idx")]

    def __str__(self) -> str:
        return f"{self.trace_id}: {self.action} (waiting for its decision)"
