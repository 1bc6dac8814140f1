"""Overview, agents, KPI lift and version comparison pages, on RunRollup rows seeded directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from rollouts.models import AgentPhase, Kpi, PromotionCriteria, RunRollup
from traces.models import Rollup
from traces.rollups import Histogram

pytestmark = pytest.mark.django_db


def today():
    return datetime.now(UTC).date()


def rollup(
    project,
    *,
    days_ago=0,
    agent="triage",
    version="v2",
    phase="bounded",
    runs=100,
    errors=0,
    intervened=0,
    cost="1.00",
    ms=1000.0,
    kpis=None,
    evals=None,
    prompt_version="",
):
    """A day of runs: `kpis`/`evals` map a name to a list of per-run values."""
    hist: dict = {}
    for _ in range(runs):
        Histogram.add_value(hist, ms)
    outcomes = {}
    for kind, values_by_name in (("kpi", kpis or {}), ("eval", evals or {})):
        for name, values in values_by_name.items():
            outcomes[f"{kind}:{name}"] = {
                "n": len(values),
                "sum": float(sum(values)),
                "sumsq": float(sum(v * v for v in values)),
                "ones": sum(1 for v in values if v == 1),
            }
    return RunRollup.objects.create(
        project=project,
        day=today() - timedelta(days=days_ago),
        agent=agent,
        agent_version=version,
        prompt_version=prompt_version,
        phase=phase,
        runs=runs,
        error_runs=errors,
        intervened_runs=intervened,
        cost_usd=Decimal(cost),
        cycle_time=hist,
        outcomes=outcomes,
    )


@pytest.fixture
def resolved(project):
    return Kpi.objects.create(
        project=project, name="resolved", kind=Kpi.Kind.RATE, baseline="previous_version"
    )


@pytest.fixture
def seeded(project, resolved):
    # v1 then v2: v2 resolves 80 % vs v1 50 %, 100 runs each.
    rollup(
        project,
        days_ago=3,
        version="v1",
        runs=100,
        errors=10,
        intervened=20,
        kpis={"resolved": [1] * 50 + [0] * 50},
        evals={"helpful": [0.5, 0.7] * 50},
    )
    rollup(
        project,
        days_ago=1,
        version="v2",
        runs=100,
        errors=3,
        intervened=5,
        cost="2.50",
        kpis={"resolved": [1] * 80 + [0] * 20},
        evals={"helpful": [0.8, 0.9] * 50},
    )
    return project


# ------------------------------------------------------------------ access


@pytest.mark.parametrize("name", ["overview", "agents", "kpis"])
def test_it_requires_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_home_lands_on_the_overview(client_logged_in):
    assert client_logged_in.get("/").url == reverse("overview")


@pytest.mark.parametrize("name", ["overview", "agents", "kpis"])
def test_an_outsider_gets_404_for_another_project(outsider_client, seeded, name):
    response = outsider_client.get(reverse(name), {"project": seeded.slug})
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["overview", "agents", "kpis"])
def test_an_outsider_sees_nothing_of_another_project_by_default(outsider_client, seeded, name):
    body = outsider_client.get(reverse(name)).content.decode()
    assert "triage" not in body and "Acme Support" not in body


def test_an_outsider_cannot_compare_another_projects_versions(outsider_client, seeded):
    url = reverse("agent-compare")
    assert outsider_client.get(url, {"agent": "triage", "project": seeded.slug}).status_code == 404
    assert (
        outsider_client.get(url, {"agent": "triage"}).status_code == 404
    )  # own project: no such agent


# ------------------------------------------------------------------ overview


def test_overview_shows_the_weeks_figures_with_intervals(client_logged_in, seeded):
    # Cost comes from the 15-minute span rollups (fresher than the daily run rollups).
    Rollup.objects.create(project=seeded, bucket_start=datetime.now(UTC), cost_usd=Decimal("3.5"))
    response = client_logged_in.get(reverse("overview"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "6.5 %" in body  # 13 exceptions in 200 runs
    assert "12.5 %" in body  # 25 interventions in 200 runs
    assert "n=200" in body and "95 % CI" in body
    assert "$3.50" in body  # cost today and this month
    assert 'id="spark-runs-data"' in body
    assert reverse("cost") in body and reverse("trace-list") in body


def test_overview_sparkline_has_fourteen_days(client_logged_in, seeded):
    response = client_logged_in.get(reverse("overview"))
    fig = response.context["cards"][1]["figure"]
    assert len(fig["data"][0]["x"]) == 14
    assert fig["data"][0]["y"][-2] == 100 and fig["data"][0]["y"][-3] is None
    json.dumps(fig)  # travels through json_script


def test_overview_says_not_enough_data_for_few_runs(client_logged_in, project):
    rollup(project, runs=5, errors=1)
    body = client_logged_in.get(reverse("overview")).content.decode()
    assert "not enough data" in body and "n=5" in body


# ------------------------------------------------------------------ agents


def test_agents_page_shows_phase_version_figures_and_lift(client_logged_in, seeded):
    response = client_logged_in.get(reverse("agents"))
    body = response.content.decode()
    row = response.context["rows"][0]
    assert row["agent"] == "triage" and row["version"] == "v2" and row["phase"] == "bounded"
    assert row["exception"].n == 200 and row["exception"].value == pytest.approx(0.065)
    lift = row["lifts"][0]["lift"]
    assert lift.verdict == "better" and lift.absolute == pytest.approx(0.30)
    assert "vs version v1" in body and "+30.0 pp" in body
    assert "helpful" in body and "n=200" in body
    assert "no criteria set — add them in the admin" in body


def test_agents_page_prefers_the_declared_phase(client_logged_in, seeded):
    AgentPhase.objects.create(
        project=seeded,
        agent="triage",
        phase="expanded",
        since=datetime.now(UTC) - timedelta(days=1),
    )
    row = client_logged_in.get(reverse("agents")).context["rows"][0]
    assert row["phase"] == "expanded" and row["phase_source"] == "declared"


def test_readiness_met(client_logged_in, seeded):
    PromotionCriteria.objects.create(
        project=seeded,
        agent="triage",
        from_phase="bounded",
        to_phase="expanded",
        min_runs=150,
        max_exception_rate=Decimal("10"),
        max_intervention_rate=Decimal("15"),
        require_no_kpi_regression=True,
        window_days=7,
    )
    response = client_logged_in.get(reverse("agents"))
    (readiness,) = response.context["rows"][0]["readiness"]
    assert readiness.ready, [(c.name, c.evidence) for c in readiness.checks]
    body = response.content.decode()
    assert "bounded → expanded" in body and "ready" in body
    assert "200 runs in phase bounded" in body


def test_readiness_not_met_says_why(client_logged_in, seeded):
    PromotionCriteria.objects.create(
        project=seeded,
        agent="triage",
        from_phase="bounded",
        to_phase="expanded",
        min_runs=500,
        max_exception_rate=Decimal("2"),
        max_intervention_rate=Decimal("15"),
        require_no_kpi_regression=False,
        window_days=7,
    )
    response = client_logged_in.get(reverse("agents"))
    (readiness,) = response.context["rows"][0]["readiness"]
    checks = {c.name: c for c in readiness.checks}
    assert not readiness.ready
    assert not checks["Runs"].met and "need 500" in checks["Runs"].evidence
    assert not checks["Exception rate"].met and "limit 2 %" in checks["Exception rate"].evidence
    assert checks["Intervention rate"].met
    assert "not ready" in response.content.decode()


def test_readiness_does_not_pass_a_kpi_with_too_little_data(client_logged_in, project, resolved):
    rollup(project, days_ago=2, version="v1", runs=10, kpis={"resolved": [1, 0] * 5})
    rollup(project, days_ago=1, version="v2", runs=10, kpis={"resolved": [1] * 10})
    PromotionCriteria.objects.create(
        project=project,
        agent="triage",
        from_phase="bounded",
        to_phase="expanded",
        min_runs=1,
        max_exception_rate=Decimal("50"),
        max_intervention_rate=Decimal("50"),
        require_no_kpi_regression=True,
        window_days=7,
    )
    response = client_logged_in.get(reverse("agents"))
    (readiness,) = response.context["rows"][0]["readiness"]
    kpi_check = readiness.checks[-1]
    assert not kpi_check.met and "Not enough data" in kpi_check.evidence
    assert "not enough data" in response.content.decode()


# ------------------------------------------------------------------ KPI lift


def test_kpi_page_shows_groups_with_intervals_and_lift(client_logged_in, seeded):
    response = client_logged_in.get(reverse("kpis"))
    (section,) = response.context["sections"]
    assert section["baseline"] == "v1"
    assert [g for g, _e in section["estimates"]] == ["v1", "v2"]
    fig = section["figure"]["data"][0]
    assert fig["x"] == ["v1", "v2"] and fig["y"] == pytest.approx([50.0, 80.0])
    assert all(v > 0 for v in fig["error_y"]["array"])  # every point has its interval
    body = response.content.decode()
    assert "n=100" in body and "95 % CI" in body and "+30.0 pp" in body


def test_kpi_page_lift_over_time_needs_both_groups_on_a_day(client_logged_in, seeded):
    rollup(seeded, days_ago=0, version="v1", runs=40, kpis={"resolved": [1, 0] * 20})
    rollup(seeded, days_ago=0, version="v2", runs=40, kpis={"resolved": [1] * 30 + [0] * 10})
    (section,) = client_logged_in.get(reverse("kpis")).context["sections"]
    (trace,) = section["time_figure"]["data"]
    assert trace["name"] == "v2 − v1" and trace["x"] == [today().isoformat()]
    assert trace["y"] == pytest.approx([25.0])


def test_kpi_page_says_not_enough_data_for_small_groups(client_logged_in, project, resolved):
    rollup(project, version="v1", runs=8, kpis={"resolved": [1, 0] * 4})
    rollup(project, version="v2", runs=8, kpis={"resolved": [1] * 8})
    body = client_logged_in.get(reverse("kpis")).content.decode()
    assert "not enough data" in body.lower() and "n=8" in body


def test_kpi_page_by_phase_uses_the_declared_baseline(client_logged_in, project):
    Kpi.objects.create(
        project=project,
        name="handle",
        kind=Kpi.Kind.MEAN,
        baseline="shadow",
        higher_is_better=False,
        unit="s",
    )
    rollup(project, phase="shadow", runs=50, kpis={"handle": [100.0, 120.0] * 25})
    rollup(project, phase="bounded", runs=50, kpis={"handle": [80.0, 90.0] * 25})
    response = client_logged_in.get(reverse("kpis"), {"dim": "phase"})
    (section,) = response.context["sections"]
    assert section["baseline"] == "shadow"
    ((_g, lift),) = section["lifts"]
    assert lift.verdict == "better" and lift.absolute == pytest.approx(-25.0)


# ------------------------------------------------------------------ compare


def test_compare_shows_differences_with_intervals(client_logged_in, seeded):
    url = reverse("agent-compare")
    response = client_logged_in.get(url, {"agent": "triage", "a": "v2", "b": "v1"})
    assert response.status_code == 200
    rows = {r["label"]: r for r in response.context["rows"]}
    exceptions = rows["Exception rate"]["lift"]  # 3 % vs 10 %: the interval still spans 0
    assert exceptions.absolute == pytest.approx(-0.07)
    assert exceptions.verdict == "no_significant_difference"
    assert rows["KPI: resolved"]["lift"].absolute == pytest.approx(0.30)
    assert rows["Quality: helpful"]["lift"].verdict == "better"
    body = response.content.decode()
    assert "$0.025" in body or "$0.03" in body  # cost per run of v2
    assert "no interval" in body and "No significant difference" in body


def test_compare_writes_each_difference_with_its_sign_and_unit(client_logged_in, project):
    from traces import display

    Kpi.objects.create(project=project, name="handle", label="Handle time", unit="min")
    rollup(
        project,
        days_ago=3,
        version="v1",
        errors=10,
        cost="1.00",
        ms=1000.0,
        kpis={"handle": [4.0, 6.0] * 50},
    )
    rollup(
        project,
        days_ago=1,
        version="v2",
        errors=3,
        cost="2.50",
        ms=3000.0,
        kpis={"handle": [2.0, 3.0] * 50},
    )

    response = client_logged_in.get(
        reverse("agent-compare"), {"agent": "triage", "a": "v2", "b": "v1"}
    )

    rows = {r["label"]: r["lift_text"] for r in response.context["rows"]}
    assert "−7.0 pp (" in rows["Exception rate"]
    assert rows["KPI: Handle time"].startswith("−2.50 min (")
    points = {label: diff for label, _a, _b, _kind, diff in response.context["point_rows"]}
    fa, fb = response.context["fa"], response.context["fb"]
    assert points["Cost per run"] == "+$0.015"
    assert points["Cycle time p50"] == "+" + display.duration(fa.cycle_p50_ms - fb.cycle_p50_ms)
    assert points["Cycle time p50"].endswith(" s")
    body = response.content.decode()
    assert "−2.50 min (" in body and "+$0.015" in body


def test_compare_by_prompt_version(client_logged_in, project):
    rollup(project, version="v1", prompt_version="p1", runs=5)
    rollup(project, version="v1", prompt_version="p2", runs=5, errors=1)
    url = reverse("agent-compare")
    response = client_logged_in.get(
        url, {"agent": "triage", "dim": "prompt_version", "a": "p2", "b": "p1"}
    )
    assert response.status_code == 200 and response.context["versions"] == ["p1", "p2"]
    assert "Not enough data" in response.content.decode()


# ------------------------------------------------------------------ query counts


def _many_agents(project, n=6):
    for i in range(n):
        for v in ("v1", "v2"):
            rollup(
                project,
                agent=f"agent-{i}",
                version=v,
                days_ago=2 if v == "v1" else 1,
                kpis={"resolved": [1, 0] * 20},
            )


@pytest.mark.parametrize(("name", "limit"), [("overview", 22), ("kpis", 14)])
def test_query_count_is_bounded(
    client_logged_in, project, resolved, name, limit, django_assert_max_num_queries
):
    _many_agents(project)
    with django_assert_max_num_queries(limit):
        assert client_logged_in.get(reverse(name)).status_code == 200


def test_agents_query_count_grows_with_agents_and_kpis_only(
    client_logged_in, project, resolved, django_assert_max_num_queries
):
    # Per agent: criteria + (baseline + lift) per KPI; no per-row scan of traces.
    _many_agents(project)
    with django_assert_max_num_queries(14 + 6 * 3):
        assert client_logged_in.get(reverse("agents")).status_code == 200


def test_overview_shows_todays_and_this_months_cost_against_the_budgets(client_logged_in, project):
    from decimal import Decimal

    from budgets.models import BudgetEnvelope

    BudgetEnvelope.objects.create(
        project=project,
        name="Monthly spend",
        metric="cost_usd",
        limit=Decimal("100"),
        period="month",
        thresholds=[80, 100],
        state="warning",
        last_value=Decimal("84"),
        last_evaluated_at=datetime.now(UTC),
    )
    BudgetEnvelope.objects.create(
        project=project, name="Weekly tokens", metric="tokens", limit=1000, period="week",
        thresholds=[100],
    )  # fmt: skip

    html = client_logged_in.get(f"/overview/?project={project.slug}").content.decode()

    section = html[html.index('id="cost-budgets"') :]
    assert "Monthly spend" in section and "84 %" in section and "Warning" in section
    assert "Weekly tokens" not in section
