# Phase changes are audited: who set each one and when. Rows declared before this
# migration were not recorded: their `created_at` is taken to be their `since`.

import django.utils.timezone
from django.db import migrations, models
from django.db.models import F


def created_at_from_since(apps, schema_editor):
    AgentPhase = apps.get_model("rollouts", "AgentPhase")
    AgentPhase.objects.update(created_at=F("since"))


class Migration(migrations.Migration):
    dependencies = [
        ("rollouts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="agentphase",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="agentphase",
            name="set_by",
            field=models.CharField(blank=True, default="", max_length=150),
        ),
        migrations.AlterField(
            model_name="agentphase",
            name="phase",
            field=models.CharField(
                choices=[
                    ("shadow", "Shadow (recommends; people act)"),
                    ("bounded", "Bounded (acts on low-risk cases)"),
                    ("expanded", "Expanded"),
                    ("paused", "Paused (may not act)"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(created_at_from_since, migrations.RunPython.noop, elidable=True),
    ]
