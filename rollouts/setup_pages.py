"""Setting rollouts up in the console: the project's KPIs and its agents' promotion criteria,
listed for every member and created and edited by the project's admins, with the admin's
forms (`rollouts.forms`) so both check the same rules. An agent's phase is changed on its
page (`rollouts.views.compare_page`, through `rollouts.services.agent_phase_set`); the
criteria page lists each agent's declared phase and links there.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from rollouts.extensions import agent_checklists
from rollouts.forms import KpiForm, PromotionCriteriaForm
from rollouts.models import AgentPhase, Kpi, PromotionCriteria, RunRollup
from rollouts.pages import compare_url, utc_today
from rollouts.selectors import declared_phase
from traces.models import Membership, Project
from traces.selectors import project_from_query, project_role_for_user

READINESS_WINDOW_DAYS = 14
MAX_AGENT_SUGGESTIONS = 200


def _is_admin(user, project: Project) -> bool:
    return project_role_for_user(user=user, project=project) == Membership.Role.ADMIN


def _require_admin(request, project: Project, what: str) -> None:
    if not _is_admin(request.user, project):
        raise PermissionDenied(f"Only the project's admins {what}.")


def _project(request) -> tuple[list[Project], Project]:
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    if project is None:
        raise Http404("No project")
    return projects, project


def _scoped(request, model, pk: int):
    """The row when it belongs to one of the user's projects, else 404."""
    projects, _ = project_from_query(user=request.user, slug="")
    row = model.objects.select_related("project").filter(pk=pk, project__in=projects).first()
    if row is None:
        raise Http404("Not found")
    return projects, row


def _base(projects, project) -> dict:
    return {"project": project, "projects": projects, "nav_projects": projects}


# ------------------------------------------------------------------ KPIs


def kpi_setup_page(request):
    projects, project = _project(request)
    return render(
        request,
        "rollouts/setup/kpi_list.html",
        {
            **_base(projects, project),
            "kpis": list(Kpi.objects.filter(project=project).order_by("name")),
            "is_admin": _is_admin(request.user, project),
        },
    )


def _kpi_form_page(request, *, projects, project, kpi: Kpi | None):
    form = KpiForm(
        request.POST if request.method == "POST" else None, instance=kpi, project=project
    )
    form.fields["description"].widget.attrs["rows"] = 3
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"KPI “{saved.name}” {'saved' if kpi else 'declared'}.")
        return redirect(f"{reverse('kpi-setup')}?project={project.slug}")
    return render(
        request,
        "rollouts/setup/kpi_form.html",
        {**_base(projects, project), "form": form, "kpi": kpi},
        status=400 if form.errors else 200,
    )


def kpi_create_page(request):
    projects, project = _project(request)
    _require_admin(request, project, "declare KPIs")
    return _kpi_form_page(request, projects=projects, project=project, kpi=None)


def kpi_edit_page(request, kpi_id: int):
    projects, kpi = _scoped(request, Kpi, kpi_id)
    _require_admin(request, kpi.project, "change KPIs")
    return _kpi_form_page(request, projects=projects, project=kpi.project, kpi=kpi)


# ------------------------------------------------------------------ promotion criteria


def _known_agents(project: Project) -> list[str]:
    ran = RunRollup.objects.filter(project=project).values_list("agent", flat=True).distinct()
    declared = AgentPhase.objects.filter(project=project).values_list("agent", flat=True)
    names = {a for a in ran[:MAX_AGENT_SUGGESTIONS] if a} | set(declared[:MAX_AGENT_SUGGESTIONS])
    return sorted(names)


def _readiness_choices(project: Project, agent: str, chosen: list[str]) -> list[tuple[str, str]]:
    """The readiness items the apps put on an agent (`rollouts.extensions`), plus any the
    criteria already require."""
    today = utc_today()
    items = agent_checklists(
        project=project,
        agents=[agent or "-"],
        start_day=today - timedelta(days=READINESS_WINDOW_DAYS - 1),
        end_day=today,
    )[agent or "-"]
    choices = {item.key: item.label for item in items}
    for key in chosen:
        choices.setdefault(key, key)
    return list(choices.items())


def criteria_setup_page(request):
    projects, project = _project(request)
    rows = list(PromotionCriteria.objects.filter(project=project).order_by("agent", "from_phase"))
    agents = sorted({r.agent for r in rows} | set(_known_agents(project)))
    now = timezone.now()
    by_agent = {a: [r for r in rows if r.agent == a] for a in agents}
    return render(
        request,
        "rollouts/setup/criteria_list.html",
        {
            **_base(projects, project),
            "agents": [
                {
                    "name": a,
                    "phase": declared_phase(project_id=project.pk, agent=a, at=now),
                    "url": compare_url(project, agent=a),
                    "criteria": by_agent[a],
                }
                for a in agents
            ],
            "is_admin": _is_admin(request.user, project),
        },
    )


def _criteria_form_page(request, *, projects, project, criteria: PromotionCriteria | None):
    initial = {}
    if criteria is None and request.GET.get("agent"):
        initial["agent"] = request.GET["agent"][:200]
    form = PromotionCriteriaForm(
        request.POST if request.method == "POST" else None,
        instance=criteria,
        project=project,
        initial=initial,
    )
    agent = (
        request.POST.get("agent", "")
        if request.method == "POST"
        else (criteria.agent if criteria else initial.get("agent", ""))
    )
    # Stored keys stay choosable even when no app reports them any more; posted ones do not.
    chosen = [k for k in (criteria.require_readiness if criteria else []) if isinstance(k, str)]
    # Items to tick instead of a JSON list; the form's own rules still apply to the list.
    form.fields["require_readiness"] = forms.MultipleChoiceField(
        label=form.fields["require_readiness"].label,
        # NUL never reaches a query (PostgreSQL refuses it); the form reports it.
        choices=_readiness_choices(project, agent.replace("\x00", "").strip()[:200], chosen),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Checks from the agent's production readiness (Controls).",
    )
    form.fields["agent"].widget.attrs.update(list="agent-list", autocomplete="off")
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(
            request,
            f"Criteria for {saved.agent}, {saved.from_phase} → {saved.to_phase}, "
            f"{'saved' if criteria else 'added'}.",
        )
        return redirect(f"{reverse('criteria-setup')}?project={project.slug}#criteria-{saved.pk}")
    return render(
        request,
        "rollouts/setup/criteria_form.html",
        {
            **_base(projects, project),
            "form": form,
            "criteria": criteria,
            "agents": _known_agents(project),
        },
        status=400 if form.errors else 200,
    )


def criteria_create_page(request):
    projects, project = _project(request)
    _require_admin(request, project, "set promotion criteria")
    return _criteria_form_page(request, projects=projects, project=project, criteria=None)


def criteria_edit_page(request, criteria_id: int):
    projects, criteria = _scoped(request, PromotionCriteria, criteria_id)
    _require_admin(request, criteria.project, "change promotion criteria")
    return _criteria_form_page(
        request, projects=projects, project=criteria.project, criteria=criteria
    )
