"""Reads. Every function that returns project data is scoped to what a user may see."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from traces.models import Membership, Project, Span, Trace, TraceStatus
from traces.spanstore import span_store

_CLOCK = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d")


# How far outside its summary's bounds a trace's spans are looked for (span_list_for_trace).
SPAN_READ_MARGIN = timedelta(days=1)


def project_list_for_user(*, user) -> QuerySet[Project]:
    """Projects the user is a member of; staff see all."""
    if not user.is_authenticated:
        return Project.objects.none()
    if getattr(user, "key_id", None) is not None:  # API request authenticated by a project key
        return Project.objects.filter(pk=user.project_id)
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def project_get_for_user(*, user, slug: str) -> Project:
    """The project, or 404 when it does not exist *or* the user may not see it."""
    if "\x00" in slug or len(slug) > 200:  # no slug is like that; PostgreSQL refuses NUL
        raise Http404("No such project")
    try:
        return project_list_for_user(user=user).get(slug=slug)
    except Project.DoesNotExist:
        raise Http404("No such project") from None


def project_from_query(*, user, slug: str) -> tuple[list[Project], Project | None]:
    """The user's projects and the one a page's `?project=` names (the first project
    when none is named). 404 when the named project is not one of them."""
    projects = list(project_list_for_user(user=user))
    slug = slug.strip()
    project = next((p for p in projects if p.slug == slug), None)
    if project is None and projects and not slug:
        project = projects[0]
    if slug and project is None:
        raise Http404("No such project")
    return projects, project


def project_role_for_user(*, user, project: Project) -> str | None:
    if user.is_staff:
        return Membership.Role.ADMIN
    membership = Membership.objects.filter(user=user, project=project).first()
    return membership.role if membership else None


@dataclass
class TraceFilters:
    """The trace list's filters, parsed from query parameters (page and API alike)."""

    project: str = ""
    agent: str = ""
    status: str = ""
    session: str = ""
    since: datetime | None = None
    until: datetime | None = None
    min_cost: Decimal | None = None
    q: str = ""
    order: str = "newest"
    errors: list[str] | None = None

    ORDERS = {
        "newest": ("-started_at", "-id"),
        "cost": ("-cost_usd", "-started_at", "-id"),
        "duration": ("-duration_ms", "-started_at", "-id"),
        "tokens": ("-input_tokens", "-started_at", "-id"),
    }

    @classmethod
    def from_params(cls, params) -> TraceFilters:
        f = cls(
            project=params.get("project", "").strip(),
            agent=params.get("agent", "").strip(),
            status=params.get("status", "").strip(),
            session=params.get("session", "").strip(),
            q=params.get("q", "").strip(),
            errors=[],
        )
        order = params.get("order", "").strip()
        if order:
            if order in cls.ORDERS:
                f.order = order
            else:
                f.errors.append(f"order must be one of {', '.join(cls.ORDERS)}")
        if f.status and f.status not in TraceStatus.values:
            f.errors.append(f"status must be one of {', '.join(TraceStatus.values)}")
            f.status = ""
        for name in ("since", "until"):
            raw = params.get(name, "").strip()
            if not raw:
                continue
            # The pages send a date and a 24-hour time apart (name, name_time).
            clock = params.get(f"{name}_time", "").strip()
            if clock and len(raw) == 10:
                if not _CLOCK.fullmatch(clock):
                    f.errors.append(f"{name} time must be HH:MM, 24-hour")
                    continue
                raw = f"{raw}T{clock}"
            value = parse_datetime(raw.replace(" ", "T")) if "T" in raw or " " in raw else None
            if value is None:
                try:
                    value = datetime.fromisoformat(raw)
                except ValueError:
                    f.errors.append(f"{name} must be an ISO 8601 date or date-time")
                    continue
            if is_naive(value):
                value = make_aware(value)
            setattr(f, name, value)
        raw_cost = params.get("min_cost", "").strip()
        if raw_cost:
            try:
                f.min_cost = Decimal(raw_cost)
                if not f.min_cost.is_finite() or f.min_cost < 0:
                    raise InvalidOperation
            except InvalidOperation:
                f.errors.append("min_cost must be a non-negative number of USD")
                f.min_cost = None
        return f

    @property
    def active(self) -> bool:
        return any([self.agent, self.status, self.session, self.since, self.until, self.q]) or (
            self.min_cost is not None
        )


def trace_list(*, user, filters: TraceFilters) -> QuerySet[Trace]:
    """Traces of the user's projects, newest first, filtered."""
    qs = Trace.objects.filter(project__in=project_list_for_user(user=user))
    if filters.project:
        qs = qs.filter(project__slug=filters.project)
    return trace_filter(qs, filters)


def trace_filter(qs: QuerySet[Trace], filters: TraceFilters) -> QuerySet[Trace]:
    if filters.agent:
        qs = qs.filter(agent=filters.agent)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.session:
        qs = qs.filter(session_id=filters.session)
    if filters.since:
        qs = qs.filter(started_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(started_at__lt=filters.until)
    if filters.min_cost is not None:
        qs = qs.filter(cost_usd__gte=filters.min_cost)
    if filters.q:
        q = filters.q.lower()
        cond = Q(name__icontains=filters.q)
        if len(q) <= 32 and all(c in "0123456789abcdef" for c in q):
            cond |= Q(trace_id__startswith=q)
        qs = qs.filter(cond)
    return qs.select_related("project").order_by(*TraceFilters.ORDERS[filters.order])


def trace_get_for_user(*, user, project_slug: str, trace_id: str) -> Trace:
    """One trace of a project the user can see; 404 for anything else."""
    project = project_get_for_user(user=user, slug=project_slug)
    try:
        return Trace.objects.select_related("project").get(
            project=project, trace_id=trace_id.lower()
        )
    except Trace.DoesNotExist:
        raise Http404("No such trace") from None


def trace_find_by_id(*, user, text: str, project_slug: str = "") -> Trace | None:
    """The trace a full trace id (32 hex digits, any case) names among the user's projects
    (in `project_slug` when given); None for anything else, or when the id is in several."""
    trace_id = text.strip().lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        return None
    qs = Trace.objects.filter(project__in=project_list_for_user(user=user), trace_id=trace_id)
    if project_slug:
        qs = qs.filter(project__slug=project_slug)
    found = list(qs.select_related("project")[:2])
    return found[0] if len(found) == 1 else None


def span_list_for_trace(*, trace: Trace) -> QuerySet[Span]:
    """The trace's spans in traces_span (the relational store only): the timeline's
    queries build on this QuerySet. Readers that must see any store use
    `span_rows_for_trace`.

    Bounded by the summary's start and end, widened by SPAN_READ_MARGIN: on PostgreSQL
    the span table is partitioned by day (traces/partitions.py), and the bounds let the
    planner read the trace's two or three days instead of probing every partition. The
    margin covers a span committed after the summary was read (a root, say, that starts
    before every span seen so far)."""
    return Span.objects.filter(
        project_id=trace.project_id,
        trace_id=trace.trace_id,
        started_at__gte=trace.started_at - SPAN_READ_MARGIN,
        started_at__lte=trace.ended_at + SPAN_READ_MARGIN,
    ).order_by("started_at", "span_id")


def span_rows_for_trace(*, trace: Trace) -> list[Span]:
    """The trace's spans from the span store (SPAN_STORE_URL), in start order, as unsaved
    Span objects (no relational id). Bounded as `span_list_for_trace` is (the summary's
    start and end, widened by SPAN_READ_MARGIN): the trace's days of the partitions on
    PostgreSQL, of the sort key on ClickHouse."""
    rows = span_store().trace_spans(
        trace.project_id,
        trace.trace_id,
        start=trace.started_at - SPAN_READ_MARGIN,
        end=trace.ended_at + SPAN_READ_MARGIN,
    )
    return [Span(**row) for row in rows]


def agent_names_for_projects(*, projects: QuerySet[Project]) -> list[str]:
    return list(
        Trace.objects.filter(project__in=projects)
        .exclude(agent="")
        .order_by("agent")
        .values_list("agent", flat=True)
        .distinct()
    )


# ------------------------------------------------------------------ rollups


@dataclass
class RollupTotals:
    """Sums over a window of rollups, with merged latency histograms."""

    span_count: int = 0
    trace_count: int = 0
    error_count: int = 0
    run_error_count: int = 0
    llm_call_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_count: int = 0
    span_latency: dict | None = None
    run_latency: dict | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def run_latency_ms(self, q: float) -> float | None:
        from traces.rollups import Histogram

        return Histogram.quantile(self.run_latency or {}, q)

    def span_latency_ms(self, q: float) -> float | None:
        from traces.rollups import Histogram

        return Histogram.quantile(self.span_latency or {}, q)

    @property
    def run_error_rate(self) -> float | None:
        return self.run_error_count / self.trace_count if self.trace_count else None


def rollup_queryset(
    *,
    project_id: int,
    start: datetime,
    end: datetime,
    agent: str = "",
    model: str = "",
    service_name: str = "",
):
    """Rollup rows of a project with bucket_start in [start, end), optionally narrowed."""
    from traces.models import Rollup

    qs = Rollup.objects.filter(project_id=project_id, bucket_start__gte=start, bucket_start__lt=end)
    if agent:
        qs = qs.filter(agent=agent)
    if model:
        qs = qs.filter(model=model)
    if service_name:
        qs = qs.filter(service_name=service_name)
    return qs


def rollup_totals(
    *,
    project_id: int,
    start: datetime,
    end: datetime,
    agent: str = "",
    model: str = "",
    service_name: str = "",
    with_latency: bool = True,
) -> RollupTotals:
    """Totals over [start, end): sums in the database, histograms merged in Python."""
    from django.db.models import Sum

    from traces.rollups import SUM_FIELDS, Histogram

    qs = rollup_queryset(
        project_id=project_id,
        start=start,
        end=end,
        agent=agent,
        model=model,
        service_name=service_name,
    )
    sums = qs.aggregate(**{f: Sum(f) for f in SUM_FIELDS})
    totals = RollupTotals(**{k: (v or 0) for k, v in sums.items()})
    totals.cost_usd = Decimal(totals.cost_usd or 0)
    if with_latency:
        span_hist: dict = {}
        run_hist: dict = {}
        for span_h, run_h in qs.values_list("span_latency", "run_latency").iterator():
            Histogram.merge(span_hist, span_h)
            Histogram.merge(run_hist, run_h)
        totals.span_latency, totals.run_latency = span_hist, run_hist
    return totals
