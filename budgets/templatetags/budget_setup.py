"""`{% admin_project_slug project_or_slug as slug %}`: the slug of the project where the
user may set budgets up (the one named, or the first they administer when none is), or ""
— links to the setup pages are shown only to those who may use them."""

from __future__ import annotations

from django import template

from traces.models import Membership, Project
from traces.selectors import project_list_for_user

register = template.Library()


@register.simple_tag(takes_context=True)
def admin_project_slug(context, project: Project | str = "") -> str:
    user = context["request"].user
    if not user.is_authenticated:
        return ""
    projects = project_list_for_user(user=user)
    if not user.is_staff:
        projects = projects.filter(memberships__user=user, memberships__role=Membership.Role.ADMIN)
    if isinstance(project, Project):
        projects = projects.filter(pk=project.pk)
    elif project:
        projects = projects.filter(slug=project)
    found = projects.order_by("pk").values_list("slug", flat=True).first()
    return found or ""
