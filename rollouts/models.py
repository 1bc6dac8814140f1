"""KPIs, rollout phases, promotion criteria and the daily run rollups read by the pages.

The tables keep the names they had when these models lived in `traces` (no data moved).
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from traces.models import AUTONOMY_PHASES, Phase, Project, money_field

AUTONOMY_CHOICES = [(p.value, p.label) for p in AUTONOMY_PHASES]
# What the console may declare for an agent: an autonomy phase, or paused (the rollback
# switch: a paused agent may not act, every policy check answers deny).
DECLARED_PHASES = (*AUTONOMY_PHASES, Phase.PAUSED)
DECLARED_CHOICES = [(p.value, p.label) for p in DECLARED_PHASES]


class Kpi(models.Model):
    """A business number a project's agents are deployed to move, declared in the admin.

    Values arrive on runs (`agentops.kpi.<name>`) or later through the outcomes API.
    """

    class Kind(models.TextChoices):
        MEAN = "mean", "Mean of values (e.g. handle time)"
        RATE = "rate", "Rate of 0/1 outcomes (e.g. resolved)"

    class Baseline(models.TextChoices):
        PREVIOUS_VERSION = "previous_version", "The agent's previous version"
        SHADOW = "shadow", "The shadow phase (agent recommends, people act)"
        CONTROL = "control", "Human-handled control runs (phase 'human')"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="kpis")
    name = models.SlugField(max_length=100, help_text="As in agentops.kpi.<name>")
    label = models.CharField(max_length=150, blank=True, default="")
    unit = models.CharField(max_length=30, blank=True, default="")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.MEAN)
    higher_is_better = models.BooleanField(default=True)
    baseline = models.CharField(
        max_length=20, choices=Baseline.choices, default=Baseline.PREVIOUS_VERSION
    )
    description = models.TextField(blank=True, default="")

    class Meta:
        db_table = "traces_kpi"
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="kpi_unique")]

    def __str__(self) -> str:
        return self.label or self.name


# The run phase each phase baseline compares against.
BASELINE_PHASE = {Kpi.Baseline.SHADOW: Phase.SHADOW, Kpi.Baseline.CONTROL: Phase.HUMAN}


class AgentPhase(models.Model):
    """The phase the console declares for an agent from `since` on: the one its policy
    checks use, and the one of its runs that do not report one.

    Each change is a new row (`rollouts.services.agent_phase_set`), never an edit, so the
    rows are the audit trail: who set it (`set_by`), when (`created_at`), and from which
    phase (the row before it by `since`).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="agent_phases")
    agent = models.CharField(max_length=200)
    phase = models.CharField(max_length=16, choices=DECLARED_CHOICES)
    since = models.DateTimeField(help_text="When the phase began")
    note = models.CharField(max_length=300, blank=True, default="")
    # A name, not a foreign key: the audit trail outlives the account.
    set_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "traces_agentphase"
        ordering = ["project", "agent", "-since"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "agent", "since"], name="agent_phase_unique_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent}: {self.phase} since {self.since:%Y-%m-%d}"


class RunRollup(models.Model):
    """Runs of one UTC day per agent × agent version × prompt version × phase.

    Rebuilt whole by `rollouts.services.run_rollups_refresh` (a day's rows are replaced,
    never incremented), so a late outcome or a re-sent span simply lands on the next
    refresh. Phase is the run's reported phase, else the agent's `AgentPhase` at the run's
    start.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="UTC day of the run's start")
    agent = models.CharField(max_length=200, blank=True, default="")
    agent_version = models.CharField(max_length=100, blank=True, default="")
    prompt_version = models.CharField(max_length=100, blank=True, default="")
    phase = models.CharField(max_length=16, blank=True, default="")
    runs = models.BigIntegerField(default=0)
    error_runs = models.BigIntegerField(default=0)
    intervened_runs = models.BigIntegerField(default=0)
    cost_usd = money_field(default=0)
    cycle_time = models.JSONField(default=dict, help_text="Histogram of run durations (ms)")
    outcomes = models.JSONField(
        default=dict, help_text='{"kpi:<name>": {"n", "sum", "sumsq", "ones"}, "eval:<name>": …}'
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "traces_runrollup"
        constraints = [
            models.UniqueConstraint(
                fields=["project", "day", "agent", "agent_version", "prompt_version", "phase"],
                name="run_rollup_unique",
            ),
        ]
        indexes = [models.Index(fields=["project", "day"], name="run_rollup_project_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.agent} {self.agent_version} {self.phase}"


class RunRollupWatermark(models.Model):
    """When `run_rollups_refresh` last started: days touched since then (less a margin) are
    recomputed. One row per key; a missing or null value means "rebuild every day"."""

    key = models.CharField(max_length=50, unique=True)
    value = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "traces_runrollupwatermark"

    def __str__(self) -> str:
        return f"{self.key}: {self.value}"


class PromotionCriteria(models.Model):
    """What an agent must show over `window_days` before moving from one phase to the next."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="promotion_criteria"
    )
    agent = models.CharField(max_length=200)
    from_phase = models.CharField(max_length=16, choices=AUTONOMY_CHOICES)
    to_phase = models.CharField(max_length=16, choices=AUTONOMY_CHOICES)
    min_runs = models.PositiveIntegerField(default=500)
    max_exception_rate = models.DecimalField(
        max_digits=5, decimal_places=2, default=2, help_text="Percent of runs"
    )
    max_intervention_rate = models.DecimalField(
        max_digits=5, decimal_places=2, default=5, help_text="Percent of runs"
    )
    require_no_kpi_regression = models.BooleanField(default=True)
    require_readiness = models.JSONField(
        default=list,
        blank=True,
        help_text='Readiness items to be met, e.g. ["contracts", "budget"]',
    )
    min_shadow_agreement = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=(
            "Percent. Met when the 95 % interval's lower bound of the agreement between the "
            "agent's recommendations and the people's actions (decision memory) reaches it; "
            "empty: not required"
        ),
    )
    window_days = models.PositiveIntegerField(default=14)

    class Meta:
        db_table = "traces_promotioncriteria"
        verbose_name_plural = "promotion criteria"
        constraints = [
            models.UniqueConstraint(
                fields=["project", "agent", "from_phase"], name="promotion_criteria_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent}: {self.from_phase} → {self.to_phase}"
