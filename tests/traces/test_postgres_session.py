"""What the console sets up on PostgreSQL for partitioned spans: JIT off for its sessions,
and a BRIN index on the arrival time that every daily partition gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from traces.partitions import ensure_partitions

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's settings"),
]


def test_jit_is_off_for_the_consoles_sessions():
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


def test_every_span_partition_has_the_arrival_brin_index(settings):
    settings.SPAN_PARTITION_AHEAD_DAYS = 3
    far = datetime.now(UTC) + timedelta(days=40)  # days no partition covers yet
    created = [name for name in ensure_partitions(now=far) if name.startswith("traces_span_p")]
    assert created
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'traces_span'::regclass"
        )
        partitions = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT t.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_am a ON a.oid = i.relam "
            "WHERE a.amname = 'brin' AND pg_get_indexdef(i.oid) LIKE '%%(received_at)%%'"
        )
        indexed = {row[0] for row in cursor.fetchall()}
    assert set(created) <= partitions
    assert partitions <= indexed
    assert "traces_span" in indexed
