"""Contract checks partitioned by day of their span's start on PostgreSQL, like spans.

One check per tool span: the table grows with spans, so retention drops its days with
theirs instead of deleting rows. The conversion is traces' migration 0011's
(`partition_span_table`: the existing table kept as the `_legacy` partition, not copied; a
DEFAULT partition; days ahead), with `span_started_at` as the partition column. The unique
key gains the span's start, as the span's own key did. SQLite keeps a plain table; only the
unique constraint changes there.
"""

import importlib

from django.db import migrations, models

spans = importlib.import_module("traces.migrations.0011_span_retention")

TABLE = "controls_contractcheck"
OLD_UNIQUE = "contractcheck_unique_span"
NEW_UNIQUE = "contractcheck_unique_span_start"
COLUMN = "span_started_at"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            spans.partition_span_table(cursor, table=TABLE, unique=NEW_UNIQUE, column=COLUMN)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            spans.unpartition_span_table(
                cursor, table=TABLE, unique=NEW_UNIQUE, old_unique=OLD_UNIQUE, column=COLUMN
            )


class Migration(migrations.Migration):
    dependencies = [
        ("controls", "0008_review_resolved_index"),
        ("traces", "0013_span_approval_index"),
    ]

    operations = [
        spans.RemoveConstraint(model_name="contractcheck", name=OLD_UNIQUE),
        spans.AddConstraint(
            model_name="contractcheck",
            constraint=models.UniqueConstraint(
                fields=("project", "trace_id", "span_id", COLUMN), name=NEW_UNIQUE
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
