"""Retention: a per-project retention period, and spans partitioned by day on PostgreSQL.

On PostgreSQL `traces_span` becomes a table PARTITION BY RANGE (started_at) so that
retention drops whole days (traces/partitions.py) instead of deleting rows. The existing
table is not rewritten: it is attached as one partition, `traces_span_legacy`, FROM
(MINVALUE) TO (tomorrow 00:00 UTC), and dropped whole once all of it is past retention.
Its few rows that start tomorrow or later (clock skew) go to the DEFAULT partition first,
so that one far-future span cannot keep the old table forever. Attaching scans the table
once (the partition constraint) and builds the two indexes that must now hold the start
(primary key and unique key); the other indexes are attached as they are.

Primary key (id, started_at), unique (project_id, trace_id, span_id, started_at): a unique
index of a partitioned table must hold the partition key. The id keeps its sequence.

SQLite keeps a plain table; only the unique constraint changes there.

Tables with one row per span (contract checks) are partitioned the same way by their own
migrations, which call `partition_span_table` with their start column and key.
"""

from datetime import UTC, date, datetime, timedelta

import django.core.validators
from django.db import migrations, models

AHEAD_DAYS = 7
OLD_UNIQUE = "span_unique_per_project"
NEW_UNIQUE = "span_unique_per_project_start"
SPAN_KEY = ("project_id", "trace_id", "span_id")


def _day(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _plain_indexes(cursor, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the table's indexes that no constraint stands behind."""
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) "
        "ORDER BY i.relname",
        [table],
    )
    return cursor.fetchall()


def partition_span_table(
    cursor,
    *,
    table: str = "traces_span",
    unique: str = NEW_UNIQUE,
    today: date | None = None,
    ahead_days: int = AHEAD_DAYS,
    column: str = "started_at",
    key: tuple[str, ...] = SPAN_KEY,
) -> bool:
    """Turn a plain table into one partitioned by day of `column` in place; False if it
    already is. Its unique key becomes `unique` on `key` + `column`.

    Kept free of the app's code (a migration must not change when the app does); tests
    call it on a scratch table holding rows."""
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
    if cursor.fetchone()[0] == "p":
        return False
    today = today or datetime.now(UTC).date()
    bound = _day(today + timedelta(days=1))
    legacy, default, seq = f"{table}_legacy", f"{table}_default", f"{table}_id_seq"
    # Deferred foreign-key checks pending in this transaction would forbid ALTER TABLE.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
    next_id = cursor.fetchone()[0] + 1
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    old_seq = cursor.fetchone()[0]
    if old_seq:
        cursor.execute(f"SELECT last_value FROM {old_seq}")
        next_id = max(next_id, cursor.fetchone()[0] + 1)
    # Plain indexes (not behind a constraint) are recreated on the parent by their own
    # definition; the partition's copies are renamed and then attached, not rebuilt.
    indexes = _plain_indexes(cursor, table)
    cursor.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f') ORDER BY conname",
        [table],
    )
    constraints = cursor.fetchall()

    cursor.execute(f"ALTER TABLE {table} RENAME TO {legacy}")
    for n, (name, _definition) in enumerate(indexes):
        cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{legacy}_{n}_idx"')
    for name, kind, _definition in constraints:
        if kind in ("p", "u"):
            cursor.execute(f'ALTER TABLE {legacy} DROP CONSTRAINT "{name}"')
    cursor.execute(f"ALTER TABLE {legacy} ALTER COLUMN id DROP IDENTITY IF EXISTS")
    cursor.execute(f"ALTER TABLE {legacy} ALTER COLUMN id DROP DEFAULT")
    if old_seq:
        cursor.execute(f"DROP SEQUENCE IF EXISTS {old_seq}")

    cursor.execute(
        f"CREATE TABLE {table} (LIKE {legacy} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        f"INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE ({column})"
    )
    cursor.execute(f"CREATE SEQUENCE {seq} START WITH {int(next_id)} OWNED BY {table}.id")
    cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{seq}')")
    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id, {column})")
    cursor.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT {unique} UNIQUE ({', '.join((*key, column))})"
    )
    for _name, definition in indexes:
        cursor.execute(definition)
    for name, kind, definition in constraints:
        if kind == "f":
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')

    # Rows starting tomorrow or later wait in the DEFAULT partition (filled before it is
    # attached: no foreign-key trigger fires on it).
    cursor.execute(
        f"CREATE TABLE {default} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    cursor.execute(
        f"WITH moved AS (DELETE FROM {legacy} WHERE {column} >= %s RETURNING *) "
        f"INSERT INTO {default} SELECT * FROM moved",
        [bound],
    )
    cursor.execute(f"ALTER TABLE {table} ATTACH PARTITION {default} DEFAULT")
    cursor.execute(
        f"ALTER TABLE {table} ATTACH PARTITION {legacy} FOR VALUES FROM (MINVALUE) TO (%s)",
        [bound],
    )
    for i in range(1, ahead_days + 1):
        day = today + timedelta(days=i)
        lo, hi = _day(day), _day(day + timedelta(days=1))
        name = f"{table}_p{day:%Y%m%d}"
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {default} WHERE {column} >= %s AND {column} < %s "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            [lo, hi],
        )
        cursor.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
            [lo, hi],
        )
    return True


def unpartition_span_table(
    cursor,
    *,
    table: str = "traces_span",
    unique: str = NEW_UNIQUE,
    old_unique: str = OLD_UNIQUE,
    column: str = "started_at",
    key: tuple[str, ...] = SPAN_KEY,
) -> bool:
    """Back to a plain table (copying every row); False if it is not partitioned. Its
    unique key goes back to `old_unique` on `key`."""
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
    if cursor.fetchone()[0] != "p":
        return False
    old, seq = f"{table}_partitioned", f"{table}_id_seq"
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
    next_id = cursor.fetchone()[0] + 1
    cursor.execute(f"SELECT last_value FROM {seq}")
    next_id = max(next_id, cursor.fetchone()[0] + 1)
    indexes = _plain_indexes(cursor, table)
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
        [table],
    )
    foreign = cursor.fetchall()
    cursor.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for n, (name, _definition) in enumerate(indexes):
        cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{old}_{n}_idx"')
    cursor.execute(f"ALTER TABLE {old} DROP CONSTRAINT {table}_pkey")
    cursor.execute(f"ALTER TABLE {old} DROP CONSTRAINT {unique}")
    cursor.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING CONSTRAINTS INCLUDING STORAGE "
        "INCLUDING COMMENTS)"
    )
    # The old key has no start: of a span stored with two starts, the earliest stays.
    columns = ", ".join(key)
    cursor.execute(
        f"INSERT INTO {table} SELECT DISTINCT ON ({columns}) * FROM {old} "
        f"ORDER BY {columns}, {column}, id"
    )
    cursor.execute(f"DROP TABLE {old} CASCADE")  # its partitions and sequence with it
    cursor.execute(
        f"ALTER TABLE {table} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY "
        f"(START WITH {int(next_id)})"
    )
    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id)")
    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {old_unique} UNIQUE ({columns})")
    for _name, definition in indexes:
        cursor.execute(definition.replace(" ON ONLY ", " ON "))
    for name, definition in foreign:
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    return True


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            partition_span_table(cursor)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            unpartition_span_table(cursor)


class NotOnPostgreSQL:
    """A constraint change that PostgreSQL makes in `partition_span_table` instead."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class RemoveConstraint(NotOnPostgreSQL, migrations.RemoveConstraint):
    pass


class AddConstraint(NotOnPostgreSQL, migrations.AddConstraint):
    pass


class Migration(migrations.Migration):
    dependencies = [
        ("traces", "0010_user_time_zone"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="retention_days",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Days of spans and traces kept (whole UTC days before today); blank: "
                "the SPAN_RETENTION_DAYS setting. Rollups follow ROLLUP_RETENTION_DAYS.",
                null=True,
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(3650),
                ],
            ),
        ),
        RemoveConstraint(model_name="span", name=OLD_UNIQUE),
        AddConstraint(
            model_name="span",
            constraint=models.UniqueConstraint(
                fields=("project", "trace_id", "span_id", "started_at"), name=NEW_UNIQUE
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
