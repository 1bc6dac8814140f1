"""Full-text search over decision records' context and action.

PostgreSQL: a stored generated tsvector column `search_vector` (english, context and action)
with a GIN index; `controls.decision_memory` searches it.
SQLite: an FTS5 table over the same two columns (external content, the record table), kept
in sync by triggers and filled from the rows already there. Other databases: nothing.
"""

from django.db import migrations

PG = [
    # A stored tsvector (the database keeps it, Django does not see it): ranking reads it
    # instead of parsing every matching row's text again.
    "ALTER TABLE controls_decisionrecord ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
    "(to_tsvector('english', coalesce(context, '') || ' ' || coalesce(action, ''))) STORED",
    "CREATE INDEX decisionrecord_search_idx ON controls_decisionrecord USING GIN (search_vector)",
]
PG_DROP = [
    "DROP INDEX IF EXISTS decisionrecord_search_idx",
    "ALTER TABLE controls_decisionrecord DROP COLUMN IF EXISTS search_vector",
]

SQLITE = [
    "CREATE VIRTUAL TABLE controls_decisionrecord_fts USING fts5("
    "context, action, content='controls_decisionrecord', content_rowid='id')",
    "CREATE TRIGGER controls_decisionrecord_fts_ai AFTER INSERT ON controls_decisionrecord "
    "BEGIN INSERT INTO controls_decisionrecord_fts(rowid, context, action) "
    "VALUES (new.id, new.context, new.action); END",
    "CREATE TRIGGER controls_decisionrecord_fts_ad AFTER DELETE ON controls_decisionrecord "
    "BEGIN INSERT INTO controls_decisionrecord_fts(controls_decisionrecord_fts, rowid, "
    "context, action) VALUES ('delete', old.id, old.context, old.action); END",
    "CREATE TRIGGER controls_decisionrecord_fts_au AFTER UPDATE OF context, action "
    "ON controls_decisionrecord BEGIN "
    "INSERT INTO controls_decisionrecord_fts(controls_decisionrecord_fts, rowid, context, "
    "action) VALUES ('delete', old.id, old.context, old.action); "
    "INSERT INTO controls_decisionrecord_fts(rowid, context, action) "
    "VALUES (new.id, new.context, new.action); END",
    "INSERT INTO controls_decisionrecord_fts(controls_decisionrecord_fts) VALUES ('rebuild')",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS controls_decisionrecord_fts_au",
    "DROP TRIGGER IF EXISTS controls_decisionrecord_fts_ad",
    "DROP TRIGGER IF EXISTS controls_decisionrecord_fts_ai",
    "DROP TABLE IF EXISTS controls_decisionrecord_fts",
]


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = {"postgresql": PG, "sqlite": SQLITE}.get(vendor, [])
    for sql in statements:
        schema_editor.execute(sql)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = {"postgresql": PG_DROP, "sqlite": SQLITE_DROP}.get(vendor, [])
    for sql in statements:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("controls", "0005_people_in_the_loop")]

    operations = [migrations.RunPython(forwards, backwards)]
