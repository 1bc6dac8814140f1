# The models moved here from traces (traces 0009 drops them from its state). Their tables
# keep their traces_* names, so this only declares them: the database is not touched,
# except to hand the admin's content types (and so permissions) over to this app.

import django.db.models.deletion
from django.db import migrations, models

MODELS = ("kpi", "agentphase", "promotioncriteria", "runrollup", "runrollupwatermark")


def _move_content_types(apps, schema_editor, *, src, dst):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if not ContentType.objects.filter(app_label=dst, model=model).exists():
            ContentType.objects.filter(app_label=src, model=model).update(app_label=dst)


def forwards(apps, schema_editor):
    _move_content_types(apps, schema_editor, src="traces", dst="rollouts")


def backwards(apps, schema_editor):
    _move_content_types(apps, schema_editor, src="rollouts", dst="traces")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("traces", "0009_rollout_models_to_rollouts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="RunRollupWatermark",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("key", models.CharField(max_length=50, unique=True)),
                        ("value", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        "db_table": "traces_runrollupwatermark",
                    },
                ),
                migrations.CreateModel(
                    name="AgentPhase",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("agent", models.CharField(max_length=200)),
                        (
                            "phase",
                            models.CharField(
                                choices=[
                                    ("shadow", "Shadow (recommends; people act)"),
                                    ("bounded", "Bounded (acts on low-risk cases)"),
                                    ("expanded", "Expanded"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("since", models.DateTimeField(help_text="When the phase began")),
                        ("note", models.CharField(blank=True, default="", max_length=300)),
                        (
                            "project",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="agent_phases",
                                to="traces.project",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "traces_agentphase",
                        "ordering": ["project", "agent", "-since"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("project", "agent", "since"),
                                name="agent_phase_unique_start",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="Kpi",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "name",
                            models.SlugField(help_text="As in agentops.kpi.<name>", max_length=100),
                        ),
                        ("label", models.CharField(blank=True, default="", max_length=150)),
                        ("unit", models.CharField(blank=True, default="", max_length=30)),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("mean", "Mean of values (e.g. handle time)"),
                                    ("rate", "Rate of 0/1 outcomes (e.g. resolved)"),
                                ],
                                default="mean",
                                max_length=8,
                            ),
                        ),
                        ("higher_is_better", models.BooleanField(default=True)),
                        (
                            "baseline",
                            models.CharField(
                                choices=[
                                    ("previous_version", "The agent's previous version"),
                                    ("shadow", "The shadow phase (agent recommends, people act)"),
                                    ("control", "Human-handled control runs (phase 'human')"),
                                ],
                                default="previous_version",
                                max_length=20,
                            ),
                        ),
                        ("description", models.TextField(blank=True, default="")),
                        (
                            "project",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="kpis",
                                to="traces.project",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "traces_kpi",
                        "ordering": ["project", "name"],
                        "constraints": [
                            models.UniqueConstraint(fields=("project", "name"), name="kpi_unique")
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="PromotionCriteria",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("agent", models.CharField(max_length=200)),
                        (
                            "from_phase",
                            models.CharField(
                                choices=[
                                    ("shadow", "Shadow (recommends; people act)"),
                                    ("bounded", "Bounded (acts on low-risk cases)"),
                                    ("expanded", "Expanded"),
                                ],
                                max_length=16,
                            ),
                        ),
                        (
                            "to_phase",
                            models.CharField(
                                choices=[
                                    ("shadow", "Shadow (recommends; people act)"),
                                    ("bounded", "Bounded (acts on low-risk cases)"),
                                    ("expanded", "Expanded"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("min_runs", models.PositiveIntegerField(default=500)),
                        (
                            "max_exception_rate",
                            models.DecimalField(
                                decimal_places=2,
                                default=2,
                                help_text="Percent of runs",
                                max_digits=5,
                            ),
                        ),
                        (
                            "max_intervention_rate",
                            models.DecimalField(
                                decimal_places=2,
                                default=5,
                                help_text="Percent of runs",
                                max_digits=5,
                            ),
                        ),
                        ("require_no_kpi_regression", models.BooleanField(default=True)),
                        ("window_days", models.PositiveIntegerField(default=14)),
                        (
                            "project",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="promotion_criteria",
                                to="traces.project",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name_plural": "promotion criteria",
                        "db_table": "traces_promotioncriteria",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("project", "agent", "from_phase"),
                                name="promotion_criteria_unique",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="RunRollup",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("day", models.DateField(help_text="UTC day of the run's start")),
                        ("agent", models.CharField(blank=True, default="", max_length=200)),
                        ("agent_version", models.CharField(blank=True, default="", max_length=100)),
                        (
                            "prompt_version",
                            models.CharField(blank=True, default="", max_length=100),
                        ),
                        ("phase", models.CharField(blank=True, default="", max_length=16)),
                        ("runs", models.BigIntegerField(default=0)),
                        ("error_runs", models.BigIntegerField(default=0)),
                        ("intervened_runs", models.BigIntegerField(default=0)),
                        (
                            "cost_usd",
                            models.DecimalField(decimal_places=10, default=0, max_digits=20),
                        ),
                        (
                            "cycle_time",
                            models.JSONField(
                                default=dict, help_text="Histogram of run durations (ms)"
                            ),
                        ),
                        (
                            "outcomes",
                            models.JSONField(
                                default=dict,
                                help_text='{"kpi:<name>": {"n", "sum", "sumsq", "ones"}, "eval:<name>": …}',  # noqa: E501
                            ),
                        ),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "project",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="traces.project",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "traces_runrollup",
                        "indexes": [
                            models.Index(fields=["project", "day"], name="run_rollup_project_day")
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=(
                                    "project",
                                    "day",
                                    "agent",
                                    "agent_version",
                                    "prompt_version",
                                    "phase",
                                ),
                                name="run_rollup_unique",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
