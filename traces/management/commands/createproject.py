from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_slug
from django.db import IntegrityError

from traces.models import Membership
from traces.services import ingest_key_create, membership_set, project_create


class Command(BaseCommand):
    help = (
        "Create a project and a new ingest key for it. The key is printed once, alone on "
        "the last line, so scripts can capture it with `| tail -n 1`."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="Short name used in URLs, e.g. support-bot")
        parser.add_argument("--name", default="", help="Display name (default: the slug)")
        parser.add_argument(
            "--admin",
            action="append",
            default=[],
            metavar="USERNAME",
            help="Make this existing user an admin of the project (repeatable)",
        )
        parser.add_argument(
            "--key-name", default="default", help="Label of the ingest key (default: default)"
        )
        parser.add_argument(
            "--retention-days",
            type=int,
            default=None,
            metavar="DAYS",
            help="Days of spans kept, 1..3650 (default: the SPAN_RETENTION_DAYS setting)",
        )

    def handle(self, *args, slug, name, admin, key_name, retention_days=None, **options):
        if retention_days is not None and not 1 <= retention_days <= 3650:
            raise CommandError("--retention-days must be between 1 and 3650.")
        try:
            validate_slug(slug)
        except ValidationError:
            raise CommandError(
                f"{slug!r} is not a valid slug: use letters, digits, - and _."
            ) from None
        users = []
        User = get_user_model()
        for username in admin:
            try:
                users.append(User.objects.get(username=username))
            except User.DoesNotExist:
                raise CommandError(f"No user named {username!r}.") from None
        try:
            project = project_create(slug=slug, name=name, retention_days=retention_days)
        except IntegrityError:
            raise CommandError(
                f"A project {slug!r} exists already. Create another key in the admin."
            ) from None
        for user in users:
            membership_set(project=project, user=user, role=Membership.Role.ADMIN)
        new = ingest_key_create(project=project, name=key_name)
        self.stdout.write(f"Created project {project.slug!r} (id {project.pk}).")
        self.stdout.write(
            "Ingest key (shown once; store it now — only a hash is kept). Send it as\n"
            "  OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<key>"
        )
        self.stdout.write(new.secret)
