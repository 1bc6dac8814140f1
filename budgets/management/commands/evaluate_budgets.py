from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from budgets.evaluate import budgets_evaluate_all
from budgets.formatting import format_value
from budgets.models import BudgetEnvelope


class Command(BaseCommand):
    help = (
        "Evaluate every enabled budget envelope once, now, in this process (the same work "
        "the periodic task does), and print each one's state, value, limit and forecast."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--at",
            metavar="ISO_TIME",
            help="Evaluate as of this aware time instead of now, e.g. 2025-11-30T23:59:00+00:00",
        )

    def handle(self, *args, at=None, **options):
        now = datetime.now(UTC)
        if at:
            try:
                now = datetime.fromisoformat(at)
            except ValueError:
                raise CommandError(f"--at {at!r} is not an ISO 8601 time.") from None
            if now.tzinfo is None:
                raise CommandError("--at needs a UTC offset, e.g. 2025-11-30T23:59:00+00:00.")
        summary = budgets_evaluate_all(now=now)
        envelopes = BudgetEnvelope.objects.in_bulk([ev.envelope_id for ev in summary.evaluations])
        for ev in summary.evaluations:
            metric = envelopes[ev.envelope_id].metric
            line = (
                f"{ev.name}: {ev.state} {format_value(metric, ev.value)} of "
                f"{format_value(metric, ev.limit)} ({ev.percent:.0f} %), forecast "
                f"{format_value(metric, ev.forecast)}"
            )
            if ev.state_change:
                line += f" [was {ev.state_change.old_state}]"
            if ev.alerts:
                line += f" [{len(ev.alerts)} new alert(s)]"
            self.stdout.write(line)
        self.stdout.write(
            f"Evaluated {summary.evaluated} envelopes in {summary.seconds:.2f} s: "
            f"{summary.ok} ok, {summary.warning} warning, {summary.exceeded} exceeded; "
            f"{summary.state_changes} state changes, {summary.alerts} new alerts"
            + (f", {summary.errors} not evaluated (see the log)" if summary.errors else "")
            + "."
        )
