"""The demo of `manage.py up` sends its live runs at the rate of its backdated history, so
the cost chart shows no step where the history ends: checked on the schedule itself (the
start times the generator is given and the runs per live slot), not on a clock."""

from __future__ import annotations

from io import StringIO
from itertools import pairwise

from agentops_site.management.commands.up import Command
from traces import demo as demo_module
from traces.demo import DAY_S, NS, history_starts, live_slot_is_governed

NOW = 1_800_000_000 * NS


def test_the_history_is_one_run_per_live_interval_ending_now():
    starts = history_starts(now_ns=NOW, runs=1440, every=60)

    assert starts == sorted(starts) and len(starts) == 1440
    assert {b - a for a, b in pairwise(starts)} == {60 * NS}
    assert starts[-1] == NOW - 60 * NS and starts[0] == NOW - DAY_S * NS


def test_without_live_runs_the_history_still_covers_a_day():
    starts = history_starts(now_ns=NOW, runs=4, every=0)
    assert starts[0] == NOW - DAY_S * NS and len(set(starts)) == 4


def test_each_live_slot_sends_one_run_some_of_them_governed():
    governed = [live_slot_is_governed(slot) for slot in range(400)]
    assert 0 < sum(governed) < len(governed) / 2


def test_the_default_history_is_a_day_at_the_live_rate():
    parser = Command().create_parser("manage.py", "up")
    defaults = parser.parse_args([])
    assert defaults.history * defaults.every == DAY_S


class FakeStop:
    """A stop event whose wait(seconds) lets `slots` live slots pass, then stops; it adds up
    the time the live loop would have waited."""

    def __init__(self, slots: int):
        self.slots, self.waited = slots, 0.0

    def is_set(self) -> bool:
        return False

    def wait(self, seconds: float) -> bool:
        if self.slots == 0:
            return True
        self.slots -= 1
        self.waited += seconds
        return False


def test_up_sends_live_runs_at_the_historys_rate_per_hour(monkeypatch):
    plain, governed = [], []

    class Traffic:
        def __init__(self, **kwargs):
            pass

        def run(self, *, start_ns=None):
            plain.append(start_ns)

        def flush(self):
            pass

        def shutdown(self):
            pass

    class Governed:
        def run(self):
            governed.append(1)

        def shutdown(self):
            pass

    monkeypatch.setattr(demo_module, "DemoTraffic", Traffic)
    command = Command(stdout=StringIO(), stderr=StringIO())
    monkeypatch.setattr(command, "_governed_demo", lambda **kw: Governed())
    every, history, stop = 30.0, 240, FakeStop(slots=480)

    command._send_demo(
        base="http://testserver",
        key="k",
        login=("demo", "pw"),
        history=history,
        every=every,
        stop=stop,
    )

    backdated = [s for s in plain if s is not None]
    history_hours = (backdated[-1] - backdated[0]) / NS / 3600 + every / 3600
    live_runs = len(plain) - len(backdated) + len(governed)
    assert len(backdated) == history and governed
    assert history / history_hours == live_runs / (stop.waited / 3600) == 3600 / every
    assert "Demo history sent; log in at http://testserver/ as demo / pw" in (
        command.stdout._out.getvalue()
    )
