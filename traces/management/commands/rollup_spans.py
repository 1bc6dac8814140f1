import time

from django.core.management.base import BaseCommand, CommandError

from traces.models import Project
from traces.rollups import rollup_pending, rollup_rebuild


class Command(BaseCommand):
    help = (
        "Fold spans received since the last run into the 15-minute rollups, once, now "
        "(the same work the periodic task does). --rebuild recomputes a project's "
        "rollups from its spans within its span retention window; rollups of older days, "
        "whose spans retention has removed, are kept as they are."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rebuild",
            metavar="PROJECT",
            help="Recompute this project's rollups within its span retention window",
        )

    def handle(self, *args, rebuild=None, **options):
        started = time.perf_counter()
        if rebuild:
            project = Project.objects.filter(slug=rebuild).first()
            if project is None:
                raise CommandError(f"No project {rebuild!r}.")
            result = rollup_rebuild(project_id=project.pk)
        else:
            result = rollup_pending(max_rounds=10**6)
        self.stdout.write(
            f"Folded {result.spans} spans from {result.batches} batches into "
            f"{result.rows} rollup rows in {time.perf_counter() - started:.2f} s."
        )
        if result.since is not None:
            self.stdout.write(
                f"Rebuilt from {result.since:%Y-%m-%d} UTC on (the span retention window); "
                "older rollups kept."
            )
