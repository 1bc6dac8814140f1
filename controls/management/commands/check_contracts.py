"""`manage.py check_contracts`: check the tool spans that have no contract check yet."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from controls.checks import contract_checks_run
from traces.models import Project


class Command(BaseCommand):
    help = "Check every tool span without a contract check against its project's contracts."

    def add_arguments(self, parser):
        parser.add_argument("--project", default="", help="Only this project (slug)")

    def handle(self, *args, **options):
        project_id = None
        if slug := options["project"]:
            project = Project.objects.filter(slug=slug).first()
            if project is None:
                raise CommandError(f"No project {slug!r}.")
            project_id = project.pk
        examined = contract_checks_run(project_id=project_id)
        self.stdout.write(f"Checked {examined} tool span(s).")
