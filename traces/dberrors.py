"""Tell a database outage from a bad row.

An outage (the server is down, restarting, unreachable, out of connections, the
connection was cut) is worth retrying later unchanged: callers answer 503 with
Retry-After or leave the work for the next tick. Anything else the database refuses
(a value out of range, a NUL in a text, a broken constraint) fails again on every retry,
so retrying it forever would block whatever waits behind it.

The PostgreSQL write path uses the raw psycopg cursor for COPY, so psycopg's own
exceptions arrive here unwrapped next to Django's wrapped ones.
"""

from __future__ import annotations

import sqlite3
import sys

from django.db import InterfaceError, OperationalError

try:
    import psycopg
except ImportError:  # pragma: no cover - PostgreSQL support not installed
    psycopg = None

# SQLite reports its outages and some data errors (an integer overflow in SUM) with the
# same exception class; only these messages mean "the database cannot be used now".
_SQLITE_OUTAGE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
    "readonly database",
    "database disk image is malformed",
)


def _sqlite_outage(exc: BaseException) -> bool:
    message = str(exc).lower()
    return any(m in message for m in _SQLITE_OUTAGE_MESSAGES)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` means the database (or the span store) is unavailable (retry
    later, unchanged)."""
    if is_store_outage(exc):
        return True
    cause = exc.__cause__
    if isinstance(exc, sqlite3.Error):
        return isinstance(exc, sqlite3.OperationalError) and _sqlite_outage(exc)
    if isinstance(exc, (OperationalError, InterfaceError)):
        if isinstance(cause, sqlite3.Error):
            return is_outage(cause)
        return True
    return psycopg is not None and isinstance(
        exc, (psycopg.OperationalError, psycopg.InterfaceError)
    )


def is_store_outage(exc: BaseException) -> bool:
    """True when `exc` comes from a ClickHouse span store that cannot be used now
    (traces/spanstore): unreachable, the connection cut, or the server refusing the
    request (too many parts, memory, a timeout, read-only). The store's values are typed
    client-side, so what the server refuses is not a bad row: retrying later is right.
    Errors raised before anything is sent (DataError, ProgrammingError: a value that
    does not fit its column) are not outages."""
    if isinstance(exc, OSError):  # socket errors, refused connections, timeouts
        return True
    # Only loaded when a ClickHouse store is in use: nothing else can raise these.
    ch = sys.modules.get("clickhouse_connect.driver.exceptions")
    if ch is None:
        return False
    if isinstance(exc, (ch.OperationalError, ch.InterfaceError, ch.InternalError)):
        return True
    return type(exc) is ch.DatabaseError  # an error answered by the server
