"""`manage.py check_contracts`: check the tool spans that have no contract check yet."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from controls.checks import contract_checks_run
from controls.management.options import add_project_argument, project_id_option


class Command(BaseCommand):
    help = "Check every tool span without a contract check against its project's contracts."

    def add_arguments(self, parser):
        add_project_argument(parser)

    def handle(self, *args, **options):
        examined = contract_checks_run(project_id=project_id_option(options["project"]))
        self.stdout.write(f"Checked {examined} tool span(s).")
