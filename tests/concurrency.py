"""Work run in several threads at once, as two workers or two requests would run it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_concurrently(work: Callable[[], Any], times: int = 2) -> tuple[list, list[Exception]]:
    """Run `work` in `times` threads released together; each closes its database
    connection when done (or the test database could not be dropped). Returns what the
    calls returned and what they raised, for the test to assert on."""
    start = threading.Barrier(times)
    results: list = []
    errors: list[Exception] = []

    def one() -> None:
        try:
            start.wait()
            results.append(work())
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors
