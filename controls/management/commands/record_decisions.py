"""`manage.py record_decisions [--since WHEN] [--project SLUG]`: record the decision spans
(`agentops.decision.*`) that have no decision record yet (a sweep; the beat does the
trailing hours every minute)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from controls.decision_memory import decisions_record, pending_actions_join
from controls.management.options import (
    add_project_argument,
    add_since_argument,
    project_id_option,
    since_option,
)


class Command(BaseCommand):
    help = "Record agent decisions from their spans, each span once."

    def add_arguments(self, parser):
        add_since_argument(parser, default="every span")
        add_project_argument(parser)

    def handle(self, *args, **options):
        created = decisions_record(
            since=since_option(options["since"]),
            project_id=project_id_option(options["project"]),
        )
        joined = pending_actions_join()
        self.stdout.write(f"{created} decision(s) recorded, {joined} waiting action(s) joined.")
