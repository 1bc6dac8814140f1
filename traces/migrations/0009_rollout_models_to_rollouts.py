# The KPI, phase, criteria and run-rollup models now belong to the rollouts app. Their
# tables stay where they are (rollouts declares the same db_table), so only Django's
# idea of which app owns them changes: no data moves.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("traces", "0008_trace_merge_keys"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="AgentPhase"),
                migrations.DeleteModel(name="Kpi"),
                migrations.DeleteModel(name="PromotionCriteria"),
                migrations.DeleteModel(name="RunRollup"),
                migrations.DeleteModel(name="RunRollupWatermark"),
            ],
            database_operations=[],
        ),
    ]
