from django.core.management.base import BaseCommand, CommandError

from traces.models import PersonalToken
from traces.tokens import personal_token_revoke


class Command(BaseCommand):
    help = "Revoke personal API tokens: by the prefix shown at creation, or all of a user's."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("prefix", nargs="?", help="The token's first characters")
        group.add_argument("--user", help="Revoke every token of this user")

    def handle(self, *args, prefix, user, **options):
        tokens = PersonalToken.objects.filter(revoked_at__isnull=True)
        if user:
            tokens = tokens.filter(user__username=user)
        else:
            tokens = tokens.filter(prefix=prefix.rstrip("…"))
        revoked = sum(personal_token_revoke(token=t) for t in tokens)
        if not revoked:
            raise CommandError("No active token matches.")
        self.stdout.write(f"Revoked {revoked} token{'s' if revoked != 1 else ''}.")
