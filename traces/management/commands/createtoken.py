from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from traces.tokens import personal_token_create


class Command(BaseCommand):
    help = (
        "Create a personal API token for a user (`Authorization: Token <token>`). The token "
        "is printed once, alone on the last line, so scripts can capture it with `| tail -n 1`; "
        "only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="default", help="Label of the token")

    def handle(self, *args, username, name, **options):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
        new = personal_token_create(user=user, name=name[:100])
        self.stdout.write(
            f"Token {new.token.prefix}… for {username} ({new.token.name}). "
            "Copy it now, it is not shown again:"
        )
        self.stdout.write(new.secret)
