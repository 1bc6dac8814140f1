"""Projects, who may see them, ingest keys, and the spans and traces agents send."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Days of spans and traces kept (whole UTC days before today); blank: "
        "the SPAN_RETENTION_DAYS setting. Rollups follow ROLLUP_RETENTION_DAYS.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        ADMIN = "admin", "Admin"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class IngestKey(models.Model):
    """A secret that lets an exporter write spans into one project.

    Only a SHA-256 of the key is stored: the key is 256 random bits, so a slow
    password hash buys nothing and would cost every ingest request.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="ingest_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, help_text="The key's first characters, for display.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Step(models.TextChoices):
    AGENT = "agent", "Agent"
    LLM = "llm", "LLM"
    TOOL = "tool", "Tool"
    RETRIEVAL = "retrieval", "Retrieval"
    POLICY = "policy", "Policy"
    ESCALATION = "escalation", "Escalation"
    OTHER = "other", "Other"


class StepRole(models.TextChoices):
    """The storyline step a span may declare (`agentops.step`): intent → plan → tool call →
    result → final state, and the gates between them."""

    INTENT = "intent", "Intent"
    PLAN = "plan", "Plan"
    TOOL = "tool", "Tool call"
    RESULT = "result", "Result"
    FINAL = "final", "Final state"
    POLICY = "policy", "Policy gate"
    ESCALATION = "escalation", "Escalation"


STEP_ROLES = frozenset(str(r.value) for r in StepRole)


class Phase(models.TextChoices):
    """A run's rollout phase (agentops.autonomy.phase), the one list every app uses.

    An agent is declared in one of the autonomy phases, or paused (it may not act: every
    policy check answers deny); "human" marks a human-handled control run, compared
    against but never an agent's phase.
    """

    SHADOW = "shadow", "Shadow (recommends; people act)"
    BOUNDED = "bounded", "Bounded (acts on low-risk cases)"
    EXPANDED = "expanded", "Expanded"
    PAUSED = "paused", "Paused (may not act)"
    HUMAN = "human", "Human-handled control"


AUTONOMY_PHASES = (Phase.SHADOW, Phase.BOUNDED, Phase.EXPANDED)


class SpanStatus(models.TextChoices):
    UNSET = "unset", "Unset"
    OK = "ok", "OK"
    ERROR = "error", "Error"


class CostSource(models.TextChoices):
    NONE = "", "No model usage"
    CLIENT = "client", "Reported by the client"
    PRICE_DATA = "price_data", "Computed from price data"
    OVERRIDE = "override", "Computed from a price override"
    UNPRICED = "unpriced", "Unpriced (no known price)"


# Money: up to 10^9 USD with 10 decimals, enough for a $0.0000001 embedding call.
def money_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=20, decimal_places=10, **kwargs)


class Span(models.Model):
    """One span as received, mapped to the neutral record (see docs/semconv-mapping.md).

    Unique on (project, trace_id, span_id, started_at): ingestion inserts with ON CONFLICT
    DO NOTHING, so a re-sent batch stores nothing twice. The start is part of the key
    because on PostgreSQL the table is partitioned by it (traces/partitions.py) and a
    unique index there must hold the partition key; a span is re-sent with its own start.
    There is deliberately no foreign key to Trace: spans arrive before their trace
    summary exists.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    parent_span_id = models.CharField(max_length=16, blank=True, default="")
    name = models.CharField(max_length=500)
    kind = models.PositiveSmallIntegerField(default=0, help_text="OTLP SpanKind")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    duration_ms = models.FloatField()
    status = models.CharField(max_length=8, choices=SpanStatus.choices, default=SpanStatus.UNSET)
    status_message = models.TextField(blank=True, default="")
    error_type = models.CharField(max_length=200, blank=True, default="")

    step = models.CharField(max_length=16, choices=Step.choices, default=Step.OTHER)
    role = models.CharField(
        max_length=16, blank=True, default="", help_text="Explicit storyline step (agentops.step)"
    )
    service_name = models.CharField(max_length=200, blank=True, default="")
    agent = models.CharField(max_length=200, blank=True, default="")
    agent_version = models.CharField(max_length=100, blank=True, default="")
    prompt_version = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    provider = models.CharField(max_length=100, blank=True, default="")
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    tool_name = models.CharField(max_length=200, blank=True, default="")
    tool_call_id = models.CharField(max_length=200, blank=True, default="")
    tool_arguments = models.TextField(blank=True, default="")
    tool_result = models.TextField(blank=True, default="")
    session_id = models.CharField(max_length=200, blank=True, default="")
    user_id = models.CharField(max_length=200, blank=True, default="")

    cost_usd = money_field(null=True, blank=True, help_text="Effective cost")
    computed_cost_usd = money_field(null=True, blank=True)
    cost_source = models.CharField(
        max_length=16, choices=CostSource.choices, blank=True, default=CostSource.NONE
    )

    attributes = models.JSONField(default=dict)
    events = models.JSONField(default=list)
    links = models.JSONField(default=list)
    resource = models.JSONField(default=dict)
    scope = models.JSONField(default=dict)
    received_at = models.DateTimeField()
    batch_id = models.BigIntegerField(null=True, blank=True, help_text="IngestBatch of arrival")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "trace_id", "span_id", "started_at"],
                name="span_unique_per_project_start",
            ),
        ]
        indexes = [
            # The rollup task reads the spans of the batches it claimed.
            models.Index(fields=["batch_id"], name="span_batch_idx"),
            # Rebuilding rollups and cost by time read spans by start.
            models.Index(fields=["project", "started_at"], name="span_project_started_idx"),
            # The timeline's approval badges read a trace's approved tool calls, which are
            # few: without it, every span of the trace is read to find them.
            models.Index(
                fields=["project", "trace_id"],
                name="span_approval_idx",
                condition=Q(attributes__has_key="agentops.approval.id"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.span_id})"

    @property
    def is_error(self) -> bool:
        return self.status == SpanStatus.ERROR

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def merge_key_field() -> models.BigIntegerField:
    return models.BigIntegerField(default=0, editable=False)


class TraceStatus(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"
    INCOMPLETE = "incomplete", "Root not received"


class Trace(models.Model):
    """Summary of one trace, kept right by additive upserts whatever the order spans arrive in."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="traces")
    trace_id = models.CharField(max_length=32)
    root_span_id = models.CharField(max_length=16, blank=True, default="")
    name = models.CharField(max_length=500, blank=True, default="")
    agent = models.CharField(max_length=200, blank=True, default="")
    agent_version = models.CharField(max_length=100, blank=True, default="")
    service_name = models.CharField(max_length=200, blank=True, default="")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    # Nanosecond bounds keep the duration exact and portable across databases.
    start_ns = models.BigIntegerField(default=0)
    end_ns = models.BigIntegerField(default=0)
    duration_ms = models.FloatField(default=0)
    span_count = models.IntegerField(default=0)
    error_count = models.IntegerField(default=0)
    llm_call_count = models.IntegerField(default=0)
    tool_call_count = models.IntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = money_field(default=0)
    unpriced_count = models.IntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=TraceStatus.choices, default=TraceStatus.INCOMPLETE
    )
    root_status = models.CharField(max_length=8, blank=True, default="")
    prompt_version = models.CharField(max_length=100, blank=True, default="")
    phase = models.CharField(
        max_length=16, blank=True, default="", help_text="Rollout phase the run reported"
    )
    intervened = models.BooleanField(default=False, help_text="A person took over or changed it")
    session_id = models.CharField(max_length=200, blank=True, default="")
    user_id = models.CharField(max_length=200, blank=True, default="")
    first_received_at = models.DateTimeField()
    last_received_at = models.DateTimeField()
    # When the span that gave each chosen value started, root spans first (see
    # traces/trace_merge.py): the same spans give the same summary whatever batches they
    # arrive in. 0 on rows written before the keys existed, which keeps their values.
    root_key = merge_key_field()
    name_key = merge_key_field()
    agent_key = merge_key_field()
    agent_version_key = merge_key_field()
    service_name_key = merge_key_field()
    prompt_version_key = merge_key_field()
    phase_key = merge_key_field()
    session_id_key = merge_key_field()
    user_id_key = merge_key_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "trace_id"], name="trace_unique_per_project"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "-started_at"], name="trace_project_started_idx"),
            models.Index(
                fields=["project", "agent", "-started_at"], name="trace_project_agent_idx"
            ),
            models.Index(
                fields=["project", "status", "-started_at"], name="trace_project_status_idx"
            ),
            models.Index(
                fields=["project", "session_id", "started_at"],
                name="trace_project_session_idx",
                condition=~Q(session_id=""),
            ),
            # The run-rollup refresh finds the days that changed since its watermark.
            models.Index(fields=["last_received_at"], name="trace_last_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.trace_id}"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ModelPriceOverride(models.Model):
    """A price that wins over the packaged price data from `effective_from` on.

    Prices are USD per million tokens. Leave provider blank to match the model from
    any provider. Cached-input, cache-write and reasoning rates fall back to the
    input and output rates when blank.
    """

    provider = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=200)
    effective_from = models.DateTimeField()
    input_per_mtok = models.DecimalField(max_digits=14, decimal_places=6)
    output_per_mtok = models.DecimalField(max_digits=14, decimal_places=6)
    cached_input_per_mtok = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True
    )
    cache_write_per_mtok = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True
    )
    reasoning_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    note = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "provider", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "model", "effective_from"], name="price_override_unique"
            ),
        ]

    def __str__(self) -> str:
        who = f"{self.provider}/" if self.provider else ""
        return f"{who}{self.model} from {self.effective_from:%Y-%m-%d}"


class IngestBatch(models.Model):
    """One accepted ingest request whose spans are not yet folded into the rollups.

    Written in the ingest transaction, claimed and deleted by the rollup task in its own
    transaction (SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL): spans are counted
    exactly once, with no time-based watermark that a slow transaction could slip
    under, and two workers never fold the same batch.

    A batch the rollup cannot fold (a value its sums cannot hold) is quarantined rather
    than retried on every tick: it keeps its spans, records why, and is claimed again
    only from `retry_at` on, with a growing delay, while every other batch goes on.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField()
    span_count = models.IntegerField()
    attempts = models.PositiveIntegerField(default=0, help_text="Failed folds so far")
    error = models.TextField(blank=True, default="", help_text="Why the last fold failed")
    failed_at = models.DateTimeField(null=True, blank=True, help_text="First failed fold")
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="Not claimed before this time (quarantined)"
    )
    token = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="The batch's token in the ClickHouse span store (empty on the relational one)",
    )

    class Meta:
        verbose_name_plural = "ingest batches"

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.span_count} spans)"


class Rollup(models.Model):
    """Spans folded into 15-minute buckets per project × agent × model × service ×
    agent version × prompt version.

    Fifteen minutes because every time zone's offset is a multiple of it, so an
    envelope's hour, day, week and month in any zone is an exact sum of buckets.
    Latency histograms are sparse log-scale bin counts (traces.rollups.Histogram) that
    add up across buckets, so percentiles over any window come from here.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    bucket_start = models.DateTimeField()
    agent = models.CharField(max_length=200, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    service_name = models.CharField(max_length=200, blank=True, default="")
    agent_version = models.CharField(max_length=100, blank=True, default="")
    prompt_version = models.CharField(max_length=100, blank=True, default="")
    span_count = models.BigIntegerField(default=0)
    trace_count = models.BigIntegerField(default=0, help_text="Root spans (runs)")
    error_count = models.BigIntegerField(default=0)
    run_error_count = models.BigIntegerField(default=0)
    llm_call_count = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = money_field(default=0)
    unpriced_count = models.BigIntegerField(default=0)
    span_latency = models.JSONField(default=dict, help_text="Histogram of span durations")
    run_latency = models.JSONField(default=dict, help_text="Histogram of run (root) durations")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "project",
                    "bucket_start",
                    "agent",
                    "model",
                    "service_name",
                    "agent_version",
                    "prompt_version",
                ],
                name="rollup_unique_bucket_group",
            ),
        ]
        indexes = [models.Index(fields=["project", "bucket_start"], name="rollup_project_bucket")]

    def __str__(self) -> str:
        return f"{self.bucket_start:%Y-%m-%d %H:%M} {self.agent}/{self.model}"


class Outcome(models.Model):
    """A KPI or eval value of one run. One per (run, kind, name): posting it again updates it."""

    class Kind(models.TextChoices):
        KPI = "kpi", "KPI"
        EVAL = "eval", "Eval score"

    class Source(models.TextChoices):
        SPAN = "span", "On the run (agentops.kpi / agentops.eval)"
        API = "api", "Outcomes API"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.KPI)
    name = models.CharField(max_length=100)
    value = models.FloatField()
    source = models.CharField(max_length=8, choices=Source.choices)
    recorded_at = models.DateTimeField()
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "trace_id", "kind", "name"], name="outcome_once_per_run"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "kind", "name"], name="outcome_name_idx"),
            models.Index(fields=["received_at"], name="outcome_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value} ({self.trace_id})"


class PersonalToken(models.Model):
    """A person's API token (`Authorization: Token <token>`), acting as that person.

    Stored as ingest keys are: only a SHA-256 of the token and its first characters for
    display; the token itself is shown once, when it is created.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_tokens"
    )
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, help_text="The token's first characters.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class UserPreference(models.Model):
    """What one person chose for themselves; today the time zone pages show times in.

    An empty time zone means "not chosen": pages follow the browser's zone (a cookie its
    script sets), then settings.TIME_ZONE.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    time_zone = models.CharField(
        max_length=64, blank=True, default="", help_text="IANA zone; empty: the browser's"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.time_zone or '(browser)'}"
