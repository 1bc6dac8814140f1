"""Pages: budgets (list and detail with its usage chart), the alert inbox and alert
detail with acknowledgement, and the cost explorer.

Views parse, call read functions (budgets.selectors), build chart data
(budgets.charts) and render. Everything is read-only except acknowledging alerts (one
or several at once), which any member of the alerts' project may do, and snoozing an
envelope or muting a channel, which its project's admins (and staff) may do.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, tzinfo

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST

from budgets import charts
from budgets.evaluate import forecast_absent_reason
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
    channel_list_for_user,
    cost_series,
    cost_window,
    cost_window_default,
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
from budgets.services import (
    alert_acknowledge,
    alerts_acknowledge,
    channel_mute,
    channel_unmute,
    envelope_snooze,
    envelope_unsnooze,
)
from traces.models import Membership, Project
from traces.selectors import (
    TraceFilters,
    project_from_query,
    project_list_for_user,
    project_role_for_user,
)
from traces.timezones import local_date_time

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
            "now_dt": timezone.now(),
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
            "forecast_note": forecast_absent_reason(
                envelope, start=start, end=end, now=now, tz=tz, evaluated=evaluated_now
            ),
            "series": series,
            "figure": figure,
            "state_changes": state_change_list(envelope=envelope, limit=RECENT),
            "alerts": alerts,
            "channels": list(envelope.channels.filter(project_id=envelope.project_id)),
            "can_manage": _is_project_admin(request.user, envelope.project),
            "snoozed": envelope.snoozed_at(now),
            "snooze_choices": SNOOZE_CHOICES,
            "snooze_min": timezone.localtime(now).strftime("%Y-%m-%dT%H:%M"),
            "tz_name": timezone.get_current_timezone_name(),
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
            "selectable": any(a.status == Alert.Status.FIRING for a in page.object_list),
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
            # A burst: the lower thresholds this alert's notification stood for, or the
            # alert whose notification stood for this one.
            "covered": sorted(alert.covers.values_list("threshold", flat=True)),
            "covered_by": alert.covered_by,
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


def _next_or(request, fallback: str) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


MAX_BULK = 500


@require_POST
def alerts_acknowledge_view(request):
    """Acknowledge the checked alerts of the inbox; ids of alerts the user cannot see
    are ignored (as are resolved or already acknowledged ones)."""
    raw = request.POST.getlist("alert")
    if len(raw) > MAX_BULK:
        return HttpResponseBadRequest(f"At most {MAX_BULK} alerts at once.")
    if not all(v.isascii() and v.isdigit() and len(v) < 19 for v in raw):
        return HttpResponseBadRequest("Each alert must be an alert id.")
    target = _next_or(request, reverse("alert-list"))
    if not raw:
        messages.info(request, "Choose the alerts to acknowledge first.")
        return redirect(target)
    visible = alert_list_for_user(user=request.user).filter(pk__in=[int(v) for v in raw])
    changed = alerts_acknowledge(
        alert_ids=list(visible.values_list("pk", flat=True)), user=request.user
    )
    if changed:
        n = len(changed)
        messages.success(request, f"Acknowledged {n} alert{'s' if n != 1 else ''}.")
    else:
        messages.info(request, "Nothing to acknowledge: those alerts were not firing.")
    return redirect(target)


# ------------------------------------------------------------------ snooze and mute

SNOOZE_CHOICES = [("1h", "1 hour"), ("4h", "4 hours"), ("24h", "24 hours")]
_SNOOZE_SPANS = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "24h": timedelta(hours=24)}


def _is_project_admin(user, project: Project) -> bool:
    return project_role_for_user(user=user, project=project) == Membership.Role.ADMIN


def _require_admin(user, project: Project) -> None:
    if not _is_project_admin(user, project):
        raise PermissionDenied("Only the project's admins may snooze budgets and mute channels.")


def _snooze_until(params, *, now: datetime) -> datetime:
    """The end of the snooze from ?for=1h|4h|24h or ?until=<local date and time>."""
    span = params.get("for", "").strip()
    if span:
        if span not in _SNOOZE_SPANS:
            raise ValueError(f"Choose one of {', '.join(_SNOOZE_SPANS)}.")
        return now + _SNOOZE_SPANS[span]
    text = params.get("until", "").strip()
    if not text or len(text) > 40:
        raise ValueError("Choose how long to snooze, or until when.")
    clock = params.get("until_time", "").strip()
    if clock and len(text) == 10:  # the page sends a date and a 24-hour time apart
        if not re.fullmatch(r"(?:[01]\d|2[0-3]):[0-5]\d", clock):
            raise ValueError("Give the time as HH:MM, 24-hour, e.g. 09:00.")
        text = f"{text}T{clock}"
    try:
        until = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("Give the end as a date and time, e.g. 2026-12-24T09:00.") from None
    if until.tzinfo is None:
        until = timezone.make_aware(until, timezone.get_current_timezone())
    return until


@require_POST
def envelope_snooze_view(request, envelope_id: int):
    envelope = envelope_get_for_user(user=request.user, envelope_id=envelope_id)
    _require_admin(request.user, envelope.project)
    target = reverse("budget-detail", args=[envelope.pk])
    try:
        until = _snooze_until(request.POST, now=timezone.now())
        envelope_snooze(envelope=envelope, until=until, user=request.user)
    except ValueError as exc:
        messages.error(request, f"Not snoozed: {exc}")
        return redirect(target)
    local = timezone.localtime(until)
    messages.success(
        request,
        f"Snoozed until {local:%Y-%m-%d %H:%M} {timezone.get_current_timezone_name()}: "
        "alerts are still recorded but not sent.",
    )
    return redirect(target)


@require_POST
def envelope_unsnooze_view(request, envelope_id: int):
    envelope = envelope_get_for_user(user=request.user, envelope_id=envelope_id)
    _require_admin(request.user, envelope.project)
    if envelope_unsnooze(envelope=envelope):
        messages.success(request, "Unsnoozed: the next alerts are sent again.")
    else:
        messages.info(request, "This budget was not snoozed.")
    return redirect(reverse("budget-detail", args=[envelope.pk]))


def _channel_for_user(user, channel_id: int):
    channel = channel_list_for_user(user=user).filter(pk=channel_id).first()
    if channel is None:
        raise Http404("No such channel")
    return channel


@require_POST
def channel_mute_view(request, channel_id: int):
    channel = _channel_for_user(request.user, channel_id)
    _require_admin(request.user, channel.project)
    if channel_mute(channel=channel, user=request.user):
        messages.success(request, f"Muted “{channel.name}”: it receives nothing until unmuted.")
    else:
        messages.info(request, f"“{channel.name}” was already muted.")
    return redirect(_next_or(request, reverse("budget-list")))


@require_POST
def channel_unmute_view(request, channel_id: int):
    channel = _channel_for_user(request.user, channel_id)
    _require_admin(request.user, channel.project)
    if channel_unmute(channel=channel):
        messages.success(request, f"Unmuted “{channel.name}”.")
    else:
        messages.info(request, f"“{channel.name}” was not muted.")
    return redirect(_next_or(request, reverse("budget-list")))


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


def _window_from_params(params, *, now: datetime, tz: tzinfo, default=lambda: "7d"):
    """(start, end, bucket, window, errors) from ?window= or ?since=&until=; `default()`
    names the window when neither is given (or the window is unknown)."""
    errors: list[str] = []
    window = params.get("window", "").strip()
    filters = TraceFilters.from_params(
        {k: params.get(k, "") for k in ("since", "since_time", "until", "until_time")}
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
        window = default()
    start, end, bucket = cost_window(window=window, now=now, tz=tz)
    return start, end, bucket, window, errors


def cost_page(request):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    tz = timezone.get_current_timezone()
    now = timezone.now()
    start, end, bucket, window, errors = _window_from_params(
        request.GET,
        now=now,
        tz=tz,
        default=lambda: cost_window_default(project=project, now=now, tz=tz),
    )
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
        **dict(zip(("since_value", "since_time"), local_date_time(start), strict=True)),
        **dict(zip(("until_value", "until_time"), local_date_time(min(end, now)), strict=True)),
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
