"""The Controls page: per project and window, what the production controls saw in the
runs — contract violations, idempotency and retry findings, policy decisions."""

from __future__ import annotations

from datetime import timedelta

from django.shortcuts import render
from django.utils import timezone

from controls.approvals import approval_report
from controls.decisions import SOURCE_LABELS, policy_decision_report
from controls.findings import findings_in_window
from controls.models import ContractCheck
from controls.selectors import contract_violation_rates, uncontracted_tools
from traces.selectors import project_from_query

WINDOWS = {"1": 1, "6": 6, "24": 24, "168": 168, "720": 720}
WINDOW_LABELS = {1: "1 hour", 6: "6 hours", 24: "24 hours", 168: "7 days", 720: "30 days"}
DECISION_RUNS_SHOWN = 20


def controls_page(request):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    hours = WINDOWS.get(request.GET.get("hours", ""), 24)
    until = timezone.now()
    since = until - timedelta(hours=hours)
    context = {
        "projects": projects,
        "project": project,
        "hours": hours,
        "windows": [(str(h), WINDOW_LABELS[h]) for h in WINDOWS.values()],
        "since": since,
        "until": until,
    }
    if project is not None:
        window = {"project_id": project.pk, "since": since, "until": until}
        labels = dict(ContractCheck.Outcome.choices)
        by_tool = contract_violation_rates(**window, by=("tool", "tool_version"))
        for row in by_tool:
            row["why"] = [(o, labels.get(o, o), n) for o, n in row["outcomes"].items()]
        context.update(
            by_tool=by_tool,
            by_agent=contract_violation_rates(**window, by=("agent", "agent_version")),
            uncontracted=uncontracted_tools(**window),
        )
        context["findings"] = findings_in_window(**window)
        decisions = policy_decision_report(**window, runs=DECISION_RUNS_SHOWN)
        for row in [decisions["totals"], *decisions["by_policy"]]:
            row["source_labels"] = [(SOURCE_LABELS[s], n) for s, n in row["sources"].items()]
        context["decisions"] = decisions
        context["approvals"] = approval_report(**window)
    return render(request, "controls/controls.html", context)
