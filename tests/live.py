"""Helpers for tests that run a real server or worker process on the test database."""

from __future__ import annotations

from django.db import connection

from tests.receivers import free_port

__all__ = ["database_url", "free_port"]


def database_url() -> str:
    """The test database, as a DATABASE_URL another process can use."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
