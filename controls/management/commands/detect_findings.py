"""`manage.py detect_findings [--since WHEN] [--project SLUG]`: run the idempotency and
retry detectors over past spans and store their findings (a sweep; the beat does the
trailing window every minute)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from controls.findings import findings_sweep
from controls.management.options import (
    add_project_argument,
    add_since_argument,
    project_id_option,
    since_option,
)


class Command(BaseCommand):
    help = "Detect duplicate side effects, unkeyed retries, retry storms and retried model calls."

    def add_arguments(self, parser):
        add_since_argument(parser, default="the first span")
        add_project_argument(parser)

    def handle(self, *args, **options):
        counts = findings_sweep(
            since=since_option(options["since"]),
            project_id=project_id_option(options["project"]),
        )
        self.stdout.write(f"{counts['created']} finding(s) new, {counts['updated']} updated.")
