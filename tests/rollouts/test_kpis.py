"""Daily run rollups, the figures read from them, and KPI lifts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
from scipy import stats as sps

from rollouts.models import AgentPhase, Kpi, RunRollup
from rollouts.selectors import baseline_for, kpi_lift, run_figures, run_series
from rollouts.services import run_rollups_refresh
from rollouts.tasks import rollup_runs
from tests.factories import agent_run
from traces.models import Outcome, Trace, TraceStatus

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
D0 = T0.date()
NOW = T0 + timedelta(days=2)
_ids = count(1)


def run(
    project,
    *,
    start=T0,
    agent="support-agent",
    version="1.0.0",
    prompt="p1",
    phase="",
    error=False,
    intervened=False,
    cost="0.10",
    duration_ms=1000.0,
    received=None,
    **kpis,
):
    trace_id = f"{next(_ids):032x}"
    received = received or start + timedelta(seconds=5)
    Trace.objects.create(
        project=project,
        trace_id=trace_id,
        agent=agent,
        agent_version=version,
        prompt_version=prompt,
        phase=phase,
        status=TraceStatus.ERROR if error else TraceStatus.OK,
        intervened=intervened,
        cost_usd=Decimal(cost),
        duration_ms=duration_ms,
        started_at=start,
        ended_at=start + timedelta(milliseconds=duration_ms),
        first_received_at=received,
        last_received_at=received,
    )
    for name, value in kpis.items():
        outcome(project, trace_id, name, value, received=received)
    return trace_id


def outcome(project, trace_id, name, value, *, received, kind=Outcome.Kind.KPI):
    Outcome.objects.update_or_create(
        project=project,
        trace_id=trace_id,
        kind=kind,
        name=name,
        defaults={
            "value": value,
            "source": Outcome.Source.API,
            "recorded_at": received,
            "received_at": received,
        },
    )


def snapshot(project):
    return sorted(
        RunRollup.objects.filter(project=project).values(
            "day",
            "agent",
            "agent_version",
            "prompt_version",
            "phase",
            "runs",
            "error_runs",
            "intervened_runs",
            "cost_usd",
            "cycle_time",
            "outcomes",
        ),
        key=lambda r: (r["day"], r["agent"], r["agent_version"], r["phase"]),
    )


def test_it_aggregates_runs_of_a_day(project):
    run(project, handle_time=10.0, resolved=1.0)
    run(project, error=True, cost="0.25", handle_time=20.0, resolved=0.0)
    run(project, intervened=True, cost="0.05", duration_ms=3000, resolved=1.0)
    run(project, version="1.1.0", start=T0 + timedelta(days=1))

    result = run_rollups_refresh(now=NOW)

    assert result == {"days": 2, "rows": 2, "full": True, "failed": 0}
    row = RunRollup.objects.get(project=project, day=D0)
    assert (row.agent, row.agent_version, row.prompt_version, row.phase) == (
        "support-agent",
        "1.0.0",
        "p1",
        "",
    )
    assert (row.runs, row.error_runs, row.intervened_runs) == (3, 1, 1)
    assert row.cost_usd == Decimal("0.40")
    assert sum(row.cycle_time.values()) == 3
    assert row.outcomes["kpi:handle_time"] == {"n": 2, "sum": 30.0, "sumsq": 500.0, "ones": 0}
    assert row.outcomes["kpi:resolved"] == {"n": 3, "sum": 2.0, "sumsq": 2.0, "ones": 2}
    assert RunRollup.objects.get(project=project, day=D0 + timedelta(days=1)).runs == 1


def test_it_counts_runs_ingested_through_the_pipeline(project):
    for i in range(3):
        agent_run(project=project, start=T0 + timedelta(minutes=i), error=i == 0)
    run_rollups_refresh()
    (row,) = RunRollup.objects.filter(project=project)
    assert (row.day, row.runs, row.error_runs) == (D0, 3, 1)
    assert row.cost_usd == sum(t.cost_usd for t in Trace.objects.filter(project=project))


def test_running_it_again_changes_nothing(project):
    run(project, handle_time=10.0)
    run(project, error=True, handle_time=12.0)
    run_rollups_refresh(now=NOW)
    before = snapshot(project)

    again = run_rollups_refresh(now=NOW + timedelta(minutes=1))
    assert snapshot(project) == before
    # Nothing arrived after the watermark (less its margin): no day recomputed.
    assert run_rollups_refresh(now=NOW + timedelta(minutes=20))["days"] == 0
    assert again["full"] is False
    assert snapshot(project) == before


def test_a_late_outcome_for_an_old_run_updates_its_day(project):
    old = run(project, start=T0 - timedelta(days=30), handle_time=10.0)
    run(project, start=T0)
    run_rollups_refresh(now=NOW)

    outcome(project, old, "handle_time", 40.0, received=NOW + timedelta(minutes=30))
    outcome(project, old, "csat", 4.0, received=NOW + timedelta(minutes=30), kind="eval")
    result = run_rollups_refresh(now=NOW + timedelta(minutes=31))

    assert result["days"] == 1
    row = RunRollup.objects.get(project=project, day=D0 - timedelta(days=30))
    assert row.outcomes["kpi:handle_time"] == {"n": 1, "sum": 40.0, "sumsq": 1600.0, "ones": 0}
    assert row.outcomes["eval:csat"]["sum"] == 4.0


def test_a_late_run_replaces_its_day_rather_than_adding_to_it(project):
    run(project)
    run_rollups_refresh(now=NOW)
    run(project, start=T0 + timedelta(hours=1), received=NOW + timedelta(minutes=10))
    run_rollups_refresh(now=NOW + timedelta(minutes=11))
    assert RunRollup.objects.get(project=project, day=D0).runs == 2


def test_phase_comes_from_the_agent_phase_when_the_run_reports_none(project):
    AgentPhase.objects.create(
        project=project, agent="support-agent", phase="shadow", since=T0 - timedelta(days=5)
    )
    AgentPhase.objects.create(
        project=project, agent="support-agent", phase="bounded", since=T0 + timedelta(hours=1)
    )
    run(project, start=T0)  # shadow then
    run(project, start=T0 + timedelta(hours=2))  # bounded by then
    run(project, start=T0 + timedelta(hours=3), phase="human")  # reported wins
    run(project, start=T0, agent="billing-agent")  # no phase declared
    run_rollups_refresh(now=NOW)

    phases = dict(RunRollup.objects.filter(project=project).values_list("phase", "runs"))
    assert phases == {"shadow": 1, "bounded": 1, "human": 1, "": 1}
    assert RunRollup.objects.get(agent="billing-agent").phase == ""


def test_run_figures_group_by_any_dimensions(project, other_project):
    run(project, version="1.0.0", phase="shadow", cost="0.10", duration_ms=100, resolved=1.0)
    run(project, version="1.0.0", phase="shadow", error=True, duration_ms=200, resolved=0.0)
    run(
        project,
        version="1.1.0",
        phase="bounded",
        intervened=True,
        cost="0.30",
        duration_ms=400,
        start=T0 + timedelta(days=1),
        resolved=1.0,
    )
    run(project, agent="billing-agent", version="2.0.0", cost="1.00")
    run(other_project, version="1.0.0")
    run_rollups_refresh(now=NOW)
    days = {"project_id": project.pk, "start_day": D0, "end_day": D0 + timedelta(days=1)}

    (total,) = run_figures(**days).values()
    assert total.runs == 4
    assert total.cost_usd == Decimal("1.50")
    assert total.cost_per_run == Decimal("0.375")
    assert (total.exception.successes, total.intervention.successes) == (1, 1)

    by_version = run_figures(**days, group_by=("agent", "agent_version"))
    assert set(by_version) == {
        ("billing-agent", "2.0.0"),
        ("support-agent", "1.0.0"),
        ("support-agent", "1.1.0"),
    }
    v10 = by_version[("support-agent", "1.0.0")]
    assert (v10.runs, v10.exception.rate) == (2, 0.5)
    assert v10.kpi_rates["resolved"].successes == 1
    assert v10.kpis["resolved"].n == 2
    assert 90 < v10.cycle_p50_ms < 110
    assert 190 < v10.cycle_p95_ms < 210

    by_phase = run_figures(**days, group_by=("phase",), agent="support-agent")
    assert {k: f.runs for k, f in by_phase.items()} == {("shadow",): 2, ("bounded",): 1}
    assert by_phase[("bounded",)].intervention.rate == 1.0

    series = run_series(**days, agent="support-agent")
    assert [(d, k, f.runs) for d, k, f in series] == [
        (D0, (), 2),
        (D0 + timedelta(days=1), (), 1),
    ]
    with pytest.raises(ValueError, match="unknown dimension"):
        run_figures(**days, group_by=("model",))


def test_run_figures_takes_one_query_however_many_rows(project, django_assert_num_queries):
    def figures():
        with django_assert_num_queries(1):
            run_figures(
                project_id=project.pk,
                start_day=D0,
                end_day=D0 + timedelta(days=9),
                group_by=("agent_version", "phase"),
            )

    run(project)
    run_rollups_refresh(now=NOW)
    figures()
    for day in range(10):
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            run(
                project,
                start=T0 + timedelta(days=day),
                version=version,
                phase="bounded",
                handle_time=1.0,
                received=NOW + timedelta(hours=1),
            )
    run_rollups_refresh(now=NOW + timedelta(hours=2))
    assert RunRollup.objects.count() > 20
    figures()


HANDLE_NEW = [12.0, 15.5, 9.0, 11.0, 14.0, 13.5, 10.0, 16.0]
HANDLE_OLD = [14.0, 18.0, 17.5, 12.0, 20.0, 15.0, 19.0, 16.5, 21.0, 13.0]
RESOLVED_NEW = [1, 1, 1, 0, 1, 1, 1, 1]
RESOLVED_OLD = [1, 0, 0, 1, 1, 0, 1, 0, 1, 0]


@pytest.fixture
def two_versions(project):
    for value, resolved in zip(HANDLE_OLD, RESOLVED_OLD, strict=True):
        run(project, version="1.3.0", phase="shadow", handle_time=value, resolved=float(resolved))
    for value, resolved in zip(HANDLE_NEW, RESOLVED_NEW, strict=True):
        run(
            project,
            version="1.4.0",
            phase="bounded",
            start=T0 + timedelta(days=1),
            handle_time=value,
            resolved=float(resolved),
        )
    run(project, version="1.4.0", agent="billing-agent", handle_time=1000.0)  # not this agent
    run_rollups_refresh(now=NOW)
    Kpi.objects.create(project=project, name="handle_time", kind="mean", higher_is_better=False)
    Kpi.objects.create(project=project, name="resolved", kind="rate", baseline="shadow")
    return {
        "project_id": project.pk,
        "agent": "support-agent",
        "start_day": D0,
        "end_day": D0 + timedelta(days=1),
    }


def test_kpi_lift_of_a_mean_matches_welch_t_from_scipy(two_versions):
    lift = kpi_lift(
        **two_versions,
        kpi="handle_time",
        treatment={"agent_version": "1.4.0"},
        baseline={"agent_version": "1.3.0"},
    )

    ref = sps.ttest_ind(HANDLE_NEW, HANDLE_OLD, equal_var=False)
    low, high = ref.confidence_interval(0.95)
    diff = sum(HANDLE_NEW) / len(HANDLE_NEW) - sum(HANDLE_OLD) / len(HANDLE_OLD)
    assert lift.absolute == pytest.approx(diff)
    assert lift.absolute_low == pytest.approx(low, rel=1e-6)
    assert lift.absolute_high == pytest.approx(high, rel=1e-6)
    assert (lift.n_treatment, lift.n_baseline) == (8, 10)
    assert lift.verdict == "not_enough_data"  # fewer than 30 a side


def wilson(successes, n):
    ci = sps.binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def test_kpi_lift_of_a_rate_matches_newcombe_from_scipy_wilson(two_versions):
    lift = kpi_lift(
        **two_versions,
        kpi="resolved",
        treatment={"phase": ("bounded", "expanded")},
        baseline={"phase": "shadow"},
    )

    s1, n1, s2, n2 = sum(RESOLVED_NEW), len(RESOLVED_NEW), sum(RESOLVED_OLD), len(RESOLVED_OLD)
    p1, p2 = s1 / n1, s2 / n2
    (l1, u1), (l2, u2) = wilson(s1, n1), wilson(s2, n2)
    assert lift.kind == "rate"
    assert lift.absolute == pytest.approx(p1 - p2)
    assert lift.absolute_low == pytest.approx(p1 - p2 - math.hypot(p1 - l1, u2 - p2))
    assert lift.absolute_high == pytest.approx(p1 - p2 + math.hypot(u1 - p1, p2 - l2))


def test_baseline_for_follows_the_kpi_setting(two_versions, project):
    handle = Kpi.objects.get(name="handle_time")
    resolved = Kpi.objects.get(name="resolved")
    args = {"agent": "support-agent", "project_id": project.pk}

    previous = baseline_for(kpi=handle, current_version="1.4.0", **args)
    assert (previous.treatment, previous.baseline) == (
        {"agent_version": "1.4.0"},
        {"agent_version": "1.3.0"},
    )
    assert baseline_for(kpi=handle, current_version="1.3.0", **args) is None
    shadow = baseline_for(kpi=resolved, current_version="1.4.0", **args)
    assert shadow.baseline == {"phase": "shadow"}
    lift = kpi_lift(
        **two_versions, kpi=resolved, treatment=shadow.treatment, baseline=shadow.baseline
    )
    assert (lift.n_treatment, lift.n_baseline) == (8, 10)


def test_the_task_refreshes(project):
    run(project)
    assert rollup_runs()["rows"] == 1
    assert RunRollup.objects.get(project=project, day=D0).runs == 1
