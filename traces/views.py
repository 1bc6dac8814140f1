"""Pages: trace list, trace timeline (with its span detail partial) and session view.

Views parse, call one read function (selectors / timeline) and render.
"""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers

from traces.models import Step, TraceStatus
from traces.selectors import (
    TraceFilters,
    agent_names_for_projects,
    project_get_for_user,
    project_list_for_user,
    trace_get_for_user,
    trace_list,
)
from traces.timeline import (
    session_totals,
    session_trace_list,
    span_detail,
    span_get_for_trace,
    timeline_build,
)

PAGE_SIZE = 50
SESSION_PAGE_SIZE = 100


def home(request):
    # The overview is the landing page after login.
    return redirect("overview")


def _exporter_setup() -> dict:
    """What the empty states tell a new user to configure."""
    return {
        "otlp_endpoint": settings.PUBLIC_URL.rstrip("/") + "/v1/traces",
        "tz_name": timezone.get_current_timezone_name(),
    }


def _local_input(value) -> str:
    """An aware datetime as a datetime-local input value in the current time zone."""
    return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M") if value else ""


def trace_list_page(request):
    filters = TraceFilters.from_params(request.GET)
    page = Paginator(trace_list(user=request.user, filters=filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    agents = agent_names_for_projects(projects=project_list_for_user(user=request.user))
    return render(
        request,
        "traces/trace_list.html",
        {
            "page": page,
            "filters": filters,
            "since_value": _local_input(filters.since),
            "until_value": _local_input(filters.until),
            "agents": agents,
            "statuses": TraceStatus.choices,
            **_exporter_setup(),
        },
    )


def trace_timeline_page(request, slug: str, trace_id: str):
    trace = trace_get_for_user(user=request.user, project_slug=slug, trace_id=trace_id)
    timeline = timeline_build(trace=trace)
    return render(
        request,
        "traces/trace_timeline.html",
        {
            "trace": trace,
            "project": trace.project,
            "timeline": timeline,
            "storyline": timeline.storyline,
            "steps": Step.choices,
            "tz_name": timezone.get_current_timezone_name(),
        },
    )


def span_detail_partial(request, slug: str, trace_id: str, span_id: str):
    trace = trace_get_for_user(user=request.user, project_slug=slug, trace_id=trace_id)
    span = span_get_for_trace(trace=trace, span_id=span_id)
    if span is None:
        raise Http404("No such span")
    # The timeline fetches the bare partial; opened directly (new tab, no JS) it gets a page.
    fragment = request.headers.get("X-Requested-With") == "XMLHttpRequest"
    response = render(
        request,
        "traces/partials/span_detail.html" if fragment else "traces/span_page.html",
        {
            "trace": trace,
            "detail": span_detail(span=span, trace=trace),
        },
    )
    patch_vary_headers(response, ["X-Requested-With"])
    return response


def session_page(request, slug: str, session_id: str):
    project = project_get_for_user(user=request.user, slug=slug)
    totals = session_totals(project=project, session_id=session_id)
    if not totals.trace_count:
        raise Http404("No such session")
    page = Paginator(
        session_trace_list(project=project, session_id=session_id), SESSION_PAGE_SIZE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "traces/session_detail.html",
        {
            "project": project,
            "session_id": session_id,
            "totals": totals,
            "page": page,
            "tz_name": timezone.get_current_timezone_name(),
        },
    )
