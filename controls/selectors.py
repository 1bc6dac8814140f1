"""Reads of the tool contract registry, scoped by project."""

from __future__ import annotations

from django.db.models import QuerySet

from controls.models import ToolContract
from traces.models import Project
from traces.selectors import project_list_for_user


def contract_list_for_user(*, user, project_slug: str = "") -> QuerySet[ToolContract]:
    """Contracts of the projects the user (or project key) can see."""
    qs = ToolContract.objects.filter(project__in=project_list_for_user(user=user))
    if project_slug:
        qs = qs.filter(project__slug=project_slug)
    return qs.select_related("project")


def contract_latest(*, project: Project, name: str) -> ToolContract | None:
    """The most recently registered version of a tool's contract."""
    return (
        ToolContract.objects.filter(project=project, name=name)
        .order_by("-created_at", "-id")
        .first()
    )
