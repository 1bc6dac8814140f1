"""How much of a database outage the installed Python OTLP/HTTP exporter rides out, for
each Retry-After the console could send and each exporter timeout.

Drives the exporter's own retry loop (`opentelemetry.exporter.otlp.common.http`) with a
stand-in transport that answers 503 + Retry-After while the database is "down" and 200
after, on a virtual clock, so a 60-second outage costs no waiting. A batch's first
attempt falls at a uniformly spread moment of the outage; reported is the share of
batches the exporter gives up on (they are dropped: the SDK does not re-queue them).

    .venv/bin/python bench/exporter_outage.py
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from opentelemetry.exporter.otlp.common import http as otlp_http


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


@dataclass
class Result:
    status_code: int
    retry_after: int
    reason: str = ""
    error: Exception | None = None

    def headers(self) -> dict:
        return {"retry-after": str(self.retry_after)} if self.status_code == 503 else {}


class Transport:
    def __init__(self, clock: Clock, outage_end: float, retry_after: int) -> None:
        self.clock, self.outage_end, self.retry_after = clock, outage_end, retry_after

    def request(self, method, url, *, headers, data, timeout):
        self.clock.now += 0.005  # a refused request is quick
        code = 503 if self.clock.now < self.outage_end else 200
        return Result(code, self.retry_after)

    def is_connection_error(self, error) -> bool:
        return False


def lost_share(*, retry_after: int, timeout: float, outage: float, samples: int = 400) -> float:
    clock = Clock()
    otlp_http.time.time = clock.time  # the module's `time` is the stdlib module
    rng = random.Random(1)
    lost = 0
    for _ in range(samples):
        start = rng.uniform(0, outage)
        clock.now = start
        client = otlp_http._OTLPHTTPClient(
            Transport(clock, outage, retry_after), "http://console", "spans", timeout=timeout
        )

        def wait(seconds, _clock=clock):
            _clock.now += seconds
            return False

        client._shutdown_event.wait = wait
        if not client.export(b"x").success:
            lost += 1
    return lost / samples


def main() -> None:
    import logging
    import time as real_time

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)  # one line per retry

    saved = otlp_http.time.time
    try:
        print("batches lost (%) by Retry-After (rows) × exporter timeout × outage length")
        configs = [(10, 10), (10, 30), (30, 30), (60, 30), (60, 60)]
        print("retry-after | " + " | ".join(f"T={t}s D={d}s" for t, d in configs))
        for retry_after in (1, 2, 3, 5, 8, 9, 10, 15, 30):
            cells = [
                f"{100 * lost_share(retry_after=retry_after, timeout=t, outage=d):9.0f}"
                for t, d in configs
            ]
            print(f"{retry_after:11d} | " + " | ".join(cells))
    finally:
        otlp_http.time.time = saved
        assert otlp_http.time.time is real_time.time


if __name__ == "__main__":
    main()
