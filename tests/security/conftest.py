"""A project with data on every page: runs in a session, rollups, a KPI, a budget with its
chart and an alert. `site_pages` lists each page a logged-in user can open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from budgets.models import Alert, BudgetEnvelope
from rollouts.models import Kpi
from rollouts.services import run_rollups_refresh
from tests.factories import agent_run
from traces.ingest import span_batch_ingest
from traces.rollups import rollup_pending

# Pages whose Plotly charts must be drawn (not only the page loaded).
CHART_PAGES = {"overview", "kpis", "cost", "budget detail"}


@pytest.fixture
def site_pages(project, user):
    start = datetime.now(UTC) - timedelta(minutes=30)
    trace_id = ""
    for i, version in enumerate(["v1", "v1", "v2", "v2"]):
        trace_id, spans = agent_run(
            project=project,
            start=start + timedelta(minutes=i),
            session_id="session-1",
            error=i == 3,
            store=False,
        )
        spans[-1].attributes["gen_ai.agent.version"] = version
        span_batch_ingest(project_id=project.pk, spans=spans)
    rollup_pending()
    run_rollups_refresh()
    Kpi.objects.create(project=project, name="resolved", kind=Kpi.Kind.RATE)
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Daily spend",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("0.0001"),
        period=BudgetEnvelope.Period.DAY,
        thresholds=[80, 100],
    )
    now = datetime.now(UTC)
    alert = Alert.objects.create(
        envelope=envelope,
        project=project,
        kind=Alert.Kind.THRESHOLD,
        threshold=100,
        period_start=now.replace(hour=0, minute=0, second=0, microsecond=0),
        period_end=now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1),
        value=Decimal("0.0002"),
        limit=envelope.limit,
        message="Daily spend is at 200% of its limit.",
        trace_ids=[trace_id],
        created_at=now,
    )
    slug = project.slug
    return {
        "overview": f"/overview/?project={slug}",
        "traces": f"/traces/?project={slug}",
        "timeline": f"/p/{slug}/traces/{trace_id}/",
        "session": f"/p/{slug}/sessions/session-1/",
        "agents": f"/agents/?project={slug}",
        "version comparison": f"/agents/compare/?project={slug}&agent=support-agent",
        "kpis": f"/kpis/?project={slug}",
        "budgets": "/budgets/",
        "budget detail": f"/budgets/{envelope.pk}/",
        "alerts": "/alerts/",
        "alert detail": f"/alerts/{alert.pk}/",
        "cost": f"/cost/?project={slug}",
    }
