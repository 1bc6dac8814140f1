"""Pages: trace list, trace timeline (with its span detail partial) and session view.

Views parse, call one read function (selectors / timeline) and render.
"""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers

from traces.models import Step, TraceStatus
from traces.selectors import (
    TraceFilters,
    agent_names_for_projects,
    project_get_for_user,
    project_list_for_user,
    trace_find_by_id,
    trace_get_for_user,
    trace_list,
)
from traces.timeline import (
    MAX_WINDOW_ROWS,
    session_conversation,
    session_totals,
    session_trace_list,
    span_detail,
    span_get_for_trace,
    timeline_build,
    timeline_index,
    timeline_next,
    timeline_row_of,
    timeline_rows,
    window_rows,
)
from traces.timezones import local_date_time

PAGE_SIZE = 50
SESSION_PAGE_SIZE = 100
# The trace list's sort orders (the API's `order`): value, menu label, subtitle.
TRACE_ORDERS = (
    ("newest", "Newest", "newest first"),
    ("cost", "Costliest", "costliest first"),
    ("duration", "Slowest", "slowest first"),
    ("tokens", "Most tokens", "most input tokens first"),
)


def home(request):
    # The overview is the landing page after login.
    return redirect("overview")


def _exporter_setup() -> dict:
    """What the empty states tell a new user to configure."""
    return {
        "otlp_endpoint": settings.PUBLIC_URL.rstrip("/") + "/v1/traces",
        "tz_name": timezone.get_current_timezone_name(),
    }


def trace_list_page(request):
    filters = TraceFilters.from_params(request.GET)
    # A full trace id typed in the search box opens that trace.
    if filters.q and (
        found := trace_find_by_id(user=request.user, text=filters.q, project_slug=filters.project)
    ):
        return redirect("trace-timeline", slug=found.project.slug, trace_id=found.trace_id)
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
            **dict(zip(("since_value", "since_time"), local_date_time(filters.since), strict=True)),
            **dict(zip(("until_value", "until_time"), local_date_time(filters.until), strict=True)),
            "agents": agents,
            "statuses": TraceStatus.choices,
            "orders": [(value, label) for value, label, _ in TRACE_ORDERS],
            "order_text": next(text for value, _, text in TRACE_ORDERS if value == filters.order),
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


def _int_param(request, name: str, default: int | None, low: int, high: int) -> int:
    """A query parameter as an integer in [low, high]; ValueError naming it otherwise."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ValueError(f"{name} is required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


def timeline_rows_json(request, slug: str, trace_id: str):
    """A window of the timeline's rows, fetched as the page scrolls: ?offset=N[&limit=M], or
    ?span=ID for the window that holds that span."""
    trace = trace_get_for_user(user=request.user, project_slug=slug, trace_id=trace_id)
    index = timeline_index(trace=trace)
    try:
        limit = _int_param(request, "limit", window_rows(), 1, MAX_WINDOW_ROWS)
        span_id = request.GET.get("span")
        if span_id is not None:
            # The window holding one span (a link to it, a storyline step).
            at = timeline_row_of(index=index, span_id=span_id)
            if at is None:
                return JsonResponse({"error": "no such span in this trace"}, status=404)
            offset = at - at % limit
        else:
            offset = _int_param(request, "offset", None, 0, max(index.count - 1, 0))
    except ValueError as e:
        return JsonResponse({"error": str(e)}, status=400)
    return JsonResponse(timeline_rows(trace=trace, index=index, offset=offset, limit=limit))


def timeline_next_json(request, slug: str, trace_id: str):
    """The row of the next error or slow span: ?kind=error|slow&after=N."""
    trace = trace_get_for_user(user=request.user, project_slug=slug, trace_id=trace_id)
    index = timeline_index(trace=trace)
    kind = request.GET.get("kind")
    if kind not in ("error", "slow"):
        return JsonResponse({"error": "kind must be error or slow"}, status=400)
    try:
        after = _int_param(request, "after", -1, -1, max(index.count - 1, 0))
    except ValueError as e:
        return JsonResponse({"error": str(e)}, status=400)
    return JsonResponse({"index": timeline_next(index=index, kind=kind, after=after)})


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
            "turns": session_conversation(project=project, traces=list(page.object_list)),
            "tz_name": timezone.get_current_timezone_name(),
        },
    )
