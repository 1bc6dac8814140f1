"""The options the controls' sweep commands share: `--project SLUG` and `--since WHEN`."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.core.management.base import CommandError
from django.utils.dateparse import parse_date, parse_datetime

from traces.models import Project


def add_project_argument(parser) -> None:
    parser.add_argument("--project", default="", help="Only this project (slug)")


def add_since_argument(parser, *, default: str) -> None:
    parser.add_argument(
        "--since", default="", help=f"ISO 8601, UTC unless stated (default: {default})"
    )


def project_id_option(slug: str) -> int | None:
    """The id of the project `--project` names; None when none is named."""
    if not slug:
        return None
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise CommandError(f"No project {slug!r}.")
    return project.pk


def since_option(text: str) -> datetime | None:
    """`--since` as an aware datetime (a date is its midnight; UTC unless stated)."""
    if not text:
        return None
    try:
        value = parse_datetime(text)
        if value is None and (day := parse_date(text)) is not None:
            value = datetime.combine(day, time())
    except ValueError as exc:
        raise CommandError(f"--since {text!r}: {exc}") from exc
    if value is None:
        raise CommandError(f"--since {text!r} is not an ISO 8601 date or date and time.")
    return value if value.tzinfo else value.replace(tzinfo=UTC)
