"""The Decisions pages: a project's decision records, searched and filtered, with the
shadow-phase agreement per agent version; and one decision with similar past decisions."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render

from controls.decision_memory import (
    OUTCOMES,
    DecisionFilters,
    agreement_by_version,
    decision_get,
    decision_list,
    decision_outcome,
    run_outcomes,
    similar_decisions,
)
from traces.display import percent
from traces.paging import CappedPaginator
from traces.selectors import project_from_query, project_list_for_user

PAGE_SIZE = 25


def decisions_page(request):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    try:
        filters = DecisionFilters.from_query(request.GET)
    except ValueError:
        filters = DecisionFilters.from_query(
            {k: v for k, v in request.GET.items() if k != "outcome"}
        )
    context = {"projects": projects, "project": project, "filters": filters, "outcomes": OUTCOMES}
    if project is not None:
        page = CappedPaginator(
            decision_list(project_id=project.pk, filters=filters), PAGE_SIZE
        ).get_page(request.GET.get("page"))
        for record in page:
            record.outcome = decision_outcome(record)
        agreement = agreement_by_version(project_id=project.pk, agent=filters.agent)
        for row in agreement:
            row["shown"] = (percent(row["rate"]), percent(row["low"]), percent(row["high"]))
        context.update(page=page, agreement=agreement)
    return render(request, "controls/decisions.html", context)


def decision_page(request, pk: int):
    record = decision_get(project_ids=project_list_for_user(user=request.user).values("pk"), pk=pk)
    if record is None:
        raise Http404("No such decision")
    similar = similar_decisions(record)
    outcomes = run_outcomes([record, *similar])
    for item in [record, *similar]:
        item.outcome = decision_outcome(item)
        item.run_outcomes = outcomes.get(item.trace_id, [])
    return render(
        request,
        "controls/decision.html",
        {"record": record, "project": record.project, "similar": similar},
    )
