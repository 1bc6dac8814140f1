import time

from django.core.management.base import BaseCommand

from rollouts.services import run_rollups_refresh


class Command(BaseCommand):
    help = (
        "Recompute the daily run rollups of the days that changed since the last run, once, "
        "now (the same work the periodic task does)."
    )

    def handle(self, *args, **options):
        started = time.perf_counter()
        result = run_rollups_refresh()
        self.stdout.write(
            f"Recomputed {result['days']} project-days ({result['rows']} rows"
            f"{', all days' if result['full'] else ''}) in {time.perf_counter() - started:.2f} s."
            + (f" {result['failed']} failed; see the log." if result["failed"] else "")
        )
