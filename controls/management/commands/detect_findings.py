"""`manage.py detect_findings [--since WHEN] [--project SLUG]`: run the idempotency and
retry detectors over past spans and store their findings (a sweep; the beat does the
trailing window every minute)."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from controls.findings import findings_sweep
from traces.models import Project


def _when(text: str) -> datetime:
    try:
        value = parse_datetime(text)
        if value is None and (day := parse_date(text)) is not None:
            value = datetime.combine(day, time())
    except ValueError as exc:
        raise CommandError(f"--since {text!r}: {exc}") from exc
    if value is None:
        raise CommandError(f"--since {text!r} is not an ISO 8601 date or date and time.")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Detect duplicate side effects, unkeyed retries, retry storms and retried model calls."

    def add_arguments(self, parser):
        parser.add_argument(
            "--since", default="", help="ISO 8601, UTC unless stated (default: the first span)"
        )
        parser.add_argument("--project", default="", help="Only this project (slug)")

    def handle(self, *args, **options):
        since = _when(options["since"]) if options["since"] else None
        project_id = None
        if slug := options["project"]:
            project = Project.objects.filter(slug=slug).first()
            if project is None:
                raise CommandError(f"No project {slug!r}.")
            project_id = project.pk
        counts = findings_sweep(since=since, project_id=project_id)
        self.stdout.write(f"{counts['created']} finding(s) new, {counts['updated']} updated.")
