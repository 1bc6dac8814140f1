"""IngestBatch.token: the batch's deduplication token in the ClickHouse span store, by
which the rollups read its spans back (traces/spanstore). Empty on the relational store,
where a batch's spans carry its id."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("traces", "0011_span_retention"),
    ]

    operations = [
        migrations.AddField(
            model_name="ingestbatch",
            name="token",
            field=models.CharField(
                blank=True,
                default="",
                help_text=(
                    "The batch's token in the ClickHouse span store (empty on the relational one)"
                ),
                max_length=64,
            ),
        ),
    ]
