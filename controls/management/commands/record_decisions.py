"""`manage.py record_decisions [--since WHEN] [--project SLUG]`: record the decision spans
(`agentops.decision.*`) that have no decision record yet (a sweep; the beat does the
trailing hours every minute)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from controls.decision_memory import decisions_record
from controls.management.commands.detect_findings import _when
from traces.models import Project


class Command(BaseCommand):
    help = "Record agent decisions from their spans, each span once."

    def add_arguments(self, parser):
        parser.add_argument(
            "--since", default="", help="ISO 8601, UTC unless stated (default: every span)"
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
        created = decisions_record(since=since, project_id=project_id)
        self.stdout.write(f"{created} decision(s) recorded.")
