"""The one multi-row INSERT helper the write paths share (spans on SQLite, trace
summaries, outcomes, rollups)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

# Bound parameters per statement: SQLite allows 32,766, PostgreSQL 65,535.
MAX_PARAMS = 30_000


def insert_rows(
    *, table: str, columns: Sequence[str], rows: Sequence[tuple], tail: str = ""
) -> list[tuple]:
    """INSERT rows in as few statements as the parameter limit allows.

    `tail` follows the VALUES list (ON CONFLICT …, RETURNING …); table, columns and
    tail are SQL we write ourselves, every value is bound. Returns what RETURNING gave.
    """
    per_statement = max(1, MAX_PARAMS // len(columns))
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    returned: list[tuple] = []
    with connection.cursor() as cursor:
        for i in range(0, len(rows), per_statement):
            chunk = rows[i : i + per_statement]
            cursor.execute(
                head + ", ".join([placeholder] * len(chunk)) + (f" {tail}" if tail else ""),
                [v for row in chunk for v in row],
            )
            if "RETURNING" in tail:
                returned.extend(tuple(r) for r in cursor.fetchall())
    return returned
