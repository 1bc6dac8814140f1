"""Agents, KPI lift and version comparison pages: pick the project, window and groups, read
through `rollouts.pages`, render."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from rollouts.extensions import agent_checklists
from rollouts.models import DECLARED_PHASES
from rollouts.pages import (
    DIMS,
    Window,
    agents_page_read,
    compare_page_read,
    kpi_page_read,
    utc_today,
)
from rollouts.selectors import agent_phase_history
from rollouts.services import agent_phase_set
from rollouts.stats import MIN_SAMPLES, NOT_ENOUGH_DATA
from traces.models import AUTONOMY_PHASES, Membership, Phase
from traces.selectors import project_from_query, project_role_for_user

WINDOWS = {"7": 7, "14": 14, "30": 30, "90": 90}
COMPARE_DIMS = ("agent_version", "prompt_version")


def _window(request) -> Window:
    days = WINDOWS.get(request.GET.get("days", ""), 14)
    today = utc_today()
    return Window(days=days, start_day=today - timedelta(days=days - 1), end_day=today)


def _context(request):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    window = _window(request)
    return (
        project,
        window,
        {
            "projects": projects,
            "nav_projects": projects,
            "project": project,
            "days": window.days,
            "windows": list(WINDOWS),
            "start_day": window.start_day,
            "end_day": window.end_day,
        },
    )


def agents_page(request):
    project, window, context = _context(request)
    if project is not None:
        context["rows"] = agents_page_read(project=project, window=window)
    return render(request, "rollouts/agents.html", context)


def kpi_page(request):
    project, window, context = _context(request)
    if project is not None:
        dim = request.GET.get("dim", "agent_version")
        if dim not in DIMS:
            dim = "agent_version"
        agent = request.GET.get("agent", "").strip()
        context.update(kpi_page_read(project=project, window=window, dim=dim, agent=agent))
        context.update(
            {"dim": dim, "dims": DIMS, "dim_label": DIMS[dim], "min_samples": MIN_SAMPLES}
        )
    return render(request, "rollouts/kpis.html", context)


def compare_redirect(request, agent: str):
    query = request.GET.copy()
    query["agent"] = agent
    return redirect(f"{reverse('agent-compare')}?{query.urlencode()}", permanent=True)


def _phase_choices(current: str) -> list[tuple[str, str]]:
    """The phases the agent can be moved to from `current`, each named for what it does."""
    rank = {p.value: i for i, p in enumerate(AUTONOMY_PHASES)}
    choices = []
    for phase in DECLARED_PHASES:
        if phase == current:
            continue
        if phase == Phase.PAUSED:
            label = "Pause (it may not act)"
        elif current not in rank:
            label = f"{'Resume' if current else 'Declare'} as {phase}"
        elif rank[phase] < rank[current]:
            label = f"Demote to {phase}"
        else:
            label = f"Promote to {phase}"
        choices.append((phase.value, label))
    return choices


def compare_page(request):
    """The agent's page: its declared phase, the form that changes it (the project's
    admins; POST), the history of changes, and two versions side by side."""
    project, window, context = _context(request)
    if project is None:
        raise Http404("No such project")
    agent = request.GET.get("agent", "")
    if not agent:
        raise Http404("No agent named")
    can_change = project_role_for_user(user=request.user, project=project) == (
        Membership.Role.ADMIN
    )
    status = 200
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied("Only the project's admins change an agent's phase.")
        try:
            change = agent_phase_set(
                project=project,
                agent=agent,
                phase=request.POST.get("phase", ""),
                note=request.POST.get("note", ""),
                by=request.user.get_username(),
            )
        except ValidationError as exc:
            context["phase_errors"] = exc.messages
            context["note"] = request.POST.get("note", "")
            status = 400
        else:
            messages.success(request, f"{agent} is now {change.phase}.")
            return redirect(f"{request.get_full_path()}#phase")
    phases = agent_phase_history(project=project, agent=agent)
    context.update(
        {
            "agent": agent,
            "declared": phases["current"],
            "phase_history": phases["history"],
            "can_change": can_change,
            "phase_choices": _phase_choices(phases["current"]),
        }
    )
    dim = request.GET.get("dim", "agent_version")
    if dim not in COMPARE_DIMS:
        dim = "agent_version"
    read = compare_page_read(
        project=project,
        window=window,
        agent=agent,
        dim=dim,
        a=request.GET.get("a", ""),
        b=request.GET.get("b", ""),
    )
    if read is None and not phases["history"]:
        raise Http404("No runs of this agent in the window")
    # An agent paused a while ago may have no runs left in the window: its phase can still
    # be read and changed here.
    context.update(read or {})
    checklist = agent_checklists(
        project=project, agents=[agent], start_day=window.start_day, end_day=window.end_day
    )[agent]
    context.update(
        {
            "checklist": checklist,
            "checklist_met": sum(1 for i in checklist if i.met),
            "has_runs": read is not None,
            "dim": dim,
            "dim_label": DIMS[dim],
            "not_enough": NOT_ENOUGH_DATA,
        }
    )
    return render(request, "rollouts/compare.html", context, status=status)
