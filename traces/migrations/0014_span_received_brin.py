"""A BRIN index on the span's arrival time (PostgreSQL).

The contract-check and review-flag tasks read the spans received in a trailing window
every 30 s to a few minutes. Spans are partitioned by start, not arrival, so without an
index on `received_at` each run read every span of every day. Rows arrive in order, so a
BRIN index (a few pages a day, next to nothing to maintain on insert) lets PostgreSQL skip
every block range received before the window; `autosummarize` has autovacuum summarize each
range as it fills. Not in the model's Meta: Django's BRIN index is PostgreSQL's only, and
SQLite (the embedded default) reads a small table.
"""

from django.db import migrations

NAME = "span_received_brin"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {NAME} ON traces_span USING brin (received_at) "
            "WITH (autosummarize = on)"
        )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {NAME}")


class Migration(migrations.Migration):
    dependencies = [
        ("traces", "0013_span_approval_index"),
    ]

    operations = [migrations.RunPython(forward, backward)]
