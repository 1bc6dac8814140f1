import time

from django.core.management.base import BaseCommand

from traces.partitions import enforce_retention


class Command(BaseCommand):
    help = (
        "Create the span partitions ahead (PostgreSQL) and drop or delete what is past "
        "retention: spans, trace summaries and what goes with them after each project's "
        "retention (SPAN_RETENTION_DAYS unless the project sets its own), rollups after "
        "ROLLUP_RETENTION_DAYS. The same work the hourly task does. --dry-run prints what "
        "it would do and changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would go; change nothing"
        )

    def handle(self, *args, dry_run=False, **options):
        started = time.perf_counter()
        report = enforce_retention(dry_run=dry_run)
        for line in report.lines():
            self.stdout.write(line)
        if not report.lines():
            self.stdout.write("Nothing past retention.")
        self.stdout.write(
            f"{'Dry run: ' if dry_run else ''}{len(report.dropped)} partition(s), "
            f"{report.rows} row(s) in {time.perf_counter() - started:.2f} s."
        )
