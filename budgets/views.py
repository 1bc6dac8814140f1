"""Pages: budgets (list and detail with its usage chart), the alert inbox and alert
detail with acknowledgement, and the cost explorer.

Views parse, call read functions (budgets.selectors), build chart data
(budgets.charts) and render. Everything is read-only except acknowledging an alert,
which any member of the alert's project may do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST

from budgets import charts
from budgets.models import Alert, BudgetEnvelope
from budgets.selectors import (
    ALERT_TABS,
    GROUP_BYS,
    MAX_WINDOW,
    WINDOWS,
    EnvelopeRow,
    alert_get_for_user,
    alert_list_for_envelope,
    alert_list_for_user,
    alert_status_counts_for_user,
    bucket_for_window,
    cost_series,
    cost_window,
    delivery_list_for_alert,
    envelope_current_period,
    envelope_get_for_user,
    envelope_rows_for_user,
    envelope_scope_text,
    envelope_tz,
    envelope_usage_series,
    state_change_list,
    trace_list_for_alert,
)
from budgets.services import alert_acknowledge
from traces.models import Project
from traces.selectors import TraceFilters, project_from_query, project_list_for_user

ALERT_PAGE_SIZE = 50
RECENT = 20


def _admin_url(name: str, *args) -> str | None:
    """A link into the admin when the model is registered there."""
    try:
        return reverse(f"admin:{name}", args=args)
    except NoReverseMatch:
        return None


def _utc_param(dt: datetime) -> str:
    """An instant as the trace list's since/until take it, unambiguous in any zone."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def traces_url(
    *, envelope: BudgetEnvelope, project: Project, start: datetime, end: datetime
) -> str:
    """The trace list narrowed to the envelope's project, agent and period."""
    params = {"project": project.slug}
    if envelope.agent:
        params["agent"] = envelope.agent
    if envelope.attribute == BudgetEnvelope.Attribute.SESSION and envelope.attribute_value:
        params["session"] = envelope.attribute_value
    if envelope.metric == BudgetEnvelope.Metric.RUN_COST:
        params["min_cost"] = f"{envelope.limit.normalize():f}"  # the runs over the cap
    params["since"] = _utc_param(start)
    params["until"] = _utc_param(end)
    if envelope.metric in (BudgetEnvelope.Metric.COST, BudgetEnvelope.Metric.RUN_COST):
        params["order"] = "cost"  # the runs that drove the spend first
    elif envelope.metric in (
        BudgetEnvelope.Metric.P95_LATENCY,
        BudgetEnvelope.Metric.RUN_DURATION,
    ):
        params["order"] = "duration"
    return f"{reverse('trace-list')}?{urlencode(params)}"


def budget_list_page(request):
    project_slug = request.GET.get("project", "").strip()
    projects = list(project_list_for_user(user=request.user))
    rows = envelope_rows_for_user(user=request.user, project_slug=project_slug)
    return render(
        request,
        "budgets/budget_list.html",
        {
            "rows": rows,
            "project_slug": project_slug,
            "nav_projects": projects,
            "show_project": len(projects) > 1 and not project_slug,
            "admin_add_url": _admin_url("budgets_budgetenvelope_add"),
            "api_example": api_example(project_slug or (projects[0].slug if projects else "")),
        },
    )


def api_example(project_slug: str) -> str:
    """The body of the empty state's example request."""
    return json.dumps(
        {
            "project": project_slug or "my-project",
            "name": "Monthly model spend",
            "metric": "cost_usd",
            "limit": "500.00",
            "period": "month",
            "timezone": "Europe/Berlin",
            "thresholds": [50, 80, 100],
            "forecast": True,
            "channels": [],
        },
        indent=2,
    )


def budget_detail_page(request, envelope_id: int):
    envelope = envelope_get_for_user(user=request.user, envelope_id=envelope_id)
    now = timezone.now()
    start, end = envelope_current_period(envelope=envelope, now=now)
    tz = envelope_tz(envelope)
    evaluated_now = envelope.last_period_start == start and envelope.last_value is not None
    series = envelope_usage_series(envelope=envelope, start=start, end=end, now=now)
    figure = charts.envelope_usage_figure(
        envelope=envelope,
        series=series,
        start=start,
        end=end,
        now=now,
        tz=tz,
        forecast=envelope.last_forecast if evaluated_now and envelope.forecast else None,
    )
    alerts = alert_list_for_envelope(envelope=envelope, limit=RECENT)
    return render(
        request,
        "budgets/budget_detail.html",
        {
            "envelope": envelope,
            "row": EnvelopeRow.of(envelope),
            "project": envelope.project,
            "period_start": start,
            "period_end": end,
            "now_dt": now,
            "tz": tz,
            "evaluated_now": evaluated_now,
            "series": series,
            "figure": figure,
            "state_changes": state_change_list(envelope=envelope, limit=RECENT),
            "alerts": alerts,
            "channels": list(envelope.channels.all()),
            "traces_url": traces_url(
                envelope=envelope, project=envelope.project, start=start, end=min(end, now)
            ),
            "admin_change_url": _admin_url("budgets_budgetenvelope_change", envelope.pk),
        },
    )


def _tab(value: str) -> str:
    return value if value in ALERT_TABS else "firing"


def alert_list_page(request):
    tab = _tab(request.GET.get("status", ""))
    project_slug = request.GET.get("project", "").strip()
    qs = alert_list_for_user(
        user=request.user, status="" if tab == "all" else tab, project_slug=project_slug
    )
    page = Paginator(qs, ALERT_PAGE_SIZE).get_page(request.GET.get("page"))
    projects = list(project_list_for_user(user=request.user))
    return render(
        request,
        "budgets/alert_list.html",
        {
            "page": page,
            "tab": tab,
            "counts": alert_status_counts_for_user(user=request.user, project_slug=project_slug),
            "tabs": [
                ("firing", "Firing"),
                ("acknowledged", "Acknowledged"),
                ("resolved", "Resolved"),
                ("all", "All"),
            ],
            "project_slug": project_slug,
            "nav_projects": projects,
            "show_project": len(projects) > 1 and not project_slug,
            "tz_name": timezone.get_current_timezone_name(),
        },
    )


def alert_detail_page(request, alert_id: int):
    alert = alert_get_for_user(user=request.user, alert_id=alert_id)
    envelope = alert.envelope
    known, missing = trace_list_for_alert(alert=alert)
    return render(
        request,
        "budgets/alert_detail.html",
        {
            "alert": alert,
            "envelope": envelope,
            "project": alert.project,
            "tz": envelope_tz(envelope),
            "percent": _alert_percent(alert),
            "deliveries": delivery_list_for_alert(alert=alert),
            "known_traces": known,
            "missing_trace_ids": missing,
            "traces_url": traces_url(
                envelope=envelope,
                project=alert.project,
                start=alert.period_start,
                end=min(alert.period_end, max(alert.created_at, timezone.now())),
            ),
            "scope": envelope_scope_text(envelope),
            "tz_name": timezone.get_current_timezone_name(),
        },
    )


def _alert_percent(alert: Alert) -> float | None:
    if not alert.limit:
        return None
    return float(alert.value / alert.limit * 100)


@require_POST
def alert_acknowledge_view(request, alert_id: int):
    # Any member of the alert's project may acknowledge: 404 for everyone else.
    alert = alert_get_for_user(user=request.user, alert_id=alert_id)
    result = alert_acknowledge(alert_id=alert.pk, user=request.user)
    if result.changed:
        messages.success(request, f"Acknowledged “{result.alert.envelope.name}”.")
    elif result.alert.status == Alert.Status.ACKNOWLEDGED:
        who = result.alert.acknowledged_by
        messages.info(
            request,
            f"Already acknowledged{' by ' + who.get_username() if who else ''}.",
        )
    else:
        messages.info(request, "This alert is resolved; nothing to acknowledge.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("alert-detail", args=[alert.pk])
    return redirect(target)


# ------------------------------------------------------------------ cost explorer


def _window_from_params(params, *, now: datetime, tz: tzinfo):
    """(start, end, bucket, window, errors) from ?window= or ?since=&until=."""
    errors: list[str] = []
    window = params.get("window", "").strip()
    filters = TraceFilters.from_params(
        {"since": params.get("since", ""), "until": params.get("until", "")}
    )
    errors.extend(filters.errors or [])
    if (filters.since or filters.until) and not window:
        end = filters.until or now
        start = filters.since or (end - WINDOWS["7d"][0])
        if start >= end:
            errors.append("since must be before until")
        elif end - start > MAX_WINDOW:
            errors.append(f"The window is at most {MAX_WINDOW.days} days")
        else:
            return start, end, bucket_for_window(end - start), "custom", errors
    if window not in WINDOWS:
        window = "7d"
    start, end, bucket = cost_window(window=window, now=now, tz=tz)
    return start, end, bucket, window, errors


def cost_page(request):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    tz = timezone.get_current_timezone()
    now = timezone.now()
    start, end, bucket, window, errors = _window_from_params(request.GET, now=now, tz=tz)
    group_by = request.GET.get("group", "agent")
    if group_by not in GROUP_BYS:
        group_by = "agent"
    context = {
        "projects": projects,
        "nav_projects": projects,
        "project": project,
        "window": window,
        "windows": [("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")],
        "group_by": group_by,
        "errors": errors,
        "start": start,
        "end": end,
        "bucket": bucket,
        "bucket_label": {"15m": "15 minutes", "1h": "1 hour", "1d": "1 day"}[bucket],
        "since_value": timezone.localtime(start).strftime("%Y-%m-%dT%H:%M"),
        "until_value": timezone.localtime(min(end, now)).strftime("%Y-%m-%dT%H:%M"),
        "tz_name": timezone.get_current_timezone_name(),
        "rollup_every": settings.ROLLUP_EVERY_SECONDS,
    }
    if project is not None:
        series = cost_series(
            project=project, start=start, end=end, bucket=bucket, tz=tz, group_by=group_by
        )
        context.update(
            {
                "series": series,
                "totals": series.totals,
                "group_rows": [(g, series.group_totals[g]) for g in series.groups],
                "figures": {
                    "cost": charts.cost_figure(series),
                    "tokens": charts.tokens_figure(series),
                    "latency": charts.latency_figure(series),
                    "unpriced": charts.unpriced_figure(series),
                },
                "has_runs": series.totals.runs > 0,
                "p50": series.totals.latency_ms(0.5),
                "p95": series.totals.latency_ms(0.95),
                "p99": series.totals.latency_ms(0.99),
                "cost_per_run": (
                    series.totals.cost_usd / series.totals.runs if series.totals.runs else None
                ),
                "traces_url": f"{reverse('trace-list')}?"
                + urlencode(
                    {
                        "project": project.slug,
                        "since": _utc_param(start),
                        "until": _utc_param(end),
                    }
                ),
            }
        )
    return render(request, "budgets/cost.html", context)
