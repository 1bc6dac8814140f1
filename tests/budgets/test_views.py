"""Pages: budgets (list, detail with its usage chart), alert inbox and detail with
acknowledgement, cost explorer, the nav badge and plotly.js served locally."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from budgets.models import Alert, BudgetEnvelope, Channel, Delivery, StateChange
from tests.factories import MembershipFactory, UserFactory, agent_run
from traces.display import usd
from traces.models import Membership, Rollup, Trace
from traces.rollups import bucket_floor, rollup_pending

pytestmark = pytest.mark.django_db

PRICED_MODEL = "gpt-4o-mini"
UNPRICED_MODEL = "acme-inhouse-llm-7"


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def seeded(project, now):
    """Runs of two agents over the last hours, one of them on a model without a price,
    folded into rollups. Returns the trace ids, costliest first."""
    base = bucket_floor(now) - timedelta(hours=3)
    ids = []
    for i in range(3):
        ids.append(
            agent_run(
                project=project, agent="support-agent", start=base + i * timedelta(minutes=20)
            )[0]
        )
    ids.append(
        agent_run(
            project=project,
            agent="billing-agent",
            model="gpt-4o",
            start=base + timedelta(hours=1),
            error=True,
        )[0]
    )
    ids.append(
        agent_run(
            project=project,
            agent="billing-agent",
            model=UNPRICED_MODEL,
            start=base + timedelta(hours=2),
        )[0]
    )
    rollup_pending()
    return ids


def make_envelope(project, now, **fields) -> BudgetEnvelope:
    """An envelope evaluated for a period around `now` (its last_* fields set directly)."""
    start = bucket_floor(now) - timedelta(hours=6)
    defaults = {
        "name": "Daily spend",
        "metric": BudgetEnvelope.Metric.COST,
        "limit": Decimal("10"),
        "period": BudgetEnvelope.Period.DAY,
        "timezone": "Europe/Berlin",
        "thresholds": [50, 80, 100],
        "state": "warning",
        "state_since": now - timedelta(hours=1),
        "last_value": Decimal("8.2"),
        "last_forecast": Decimal("13"),
        "last_period_start": start,
        "last_period_end": start + timedelta(hours=24),
        "last_evaluated_at": now - timedelta(minutes=1),
    }
    return BudgetEnvelope.objects.create(project=project, **(defaults | fields))


def make_alert(envelope, *, status="firing", threshold=80, minutes_ago=30, trace_ids=(), **fields):
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return Alert.objects.create(
        envelope=envelope,
        project=envelope.project,
        kind=fields.pop("kind", Alert.Kind.THRESHOLD),
        threshold=threshold,
        period_start=envelope.last_period_start,
        period_end=envelope.last_period_end,
        value=fields.pop("value", Decimal("8.2")),
        limit=envelope.limit,
        message=fields.pop("message", f"{envelope.name} is at {threshold}% of its daily limit."),
        trace_ids=list(trace_ids),
        status=status,
        created_at=at,
        **fields,
    )


def figure(response, chart_id: str) -> dict:
    """The Plotly figure a page hands to charts.js in a json_script."""
    html = response.content.decode()
    match = re.search(
        rf'<script id="{chart_id}-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, f"no json_script for {chart_id}"
    return json.loads(match.group(1))


def trace_named(fig: dict, prefix: str) -> dict:
    return next(t for t in fig["data"] if t["name"].startswith(prefix))


# ------------------------------------------------------------------ access


@pytest.mark.parametrize("url", ["/budgets/", "/budgets/1/", "/alerts/", "/alerts/1/", "/cost/"])
def test_pages_require_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_outsider_sees_none_of_another_projects_budgets_or_alerts(outsider_client, project, now):
    envelope = make_envelope(project, now)
    alert = make_alert(envelope)

    assert "Daily spend" not in outsider_client.get("/budgets/").content.decode()
    assert outsider_client.get(f"/budgets/{envelope.pk}/").status_code == 404
    assert outsider_client.get("/alerts/?status=all").context["page"].paginator.count == 0
    assert outsider_client.get(f"/alerts/{alert.pk}/").status_code == 404
    assert outsider_client.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 404
    assert outsider_client.get(f"/cost/?project={project.slug}").status_code == 404
    alert.refresh_from_db()
    assert alert.status == "firing"


# ------------------------------------------------------------------ budgets


def test_the_budget_list_shows_usage_forecast_state_period_and_scope(
    client_logged_in, project, now
):
    make_envelope(project, now, agent="support-agent")
    make_envelope(
        project,
        now,
        name="Tokens",
        metric=BudgetEnvelope.Metric.TOKENS,
        limit=Decimal(1_000_000),
        state="exceeded",
        last_value=Decimal(1_250_000),
        last_forecast=None,
        timezone="UTC",
    )

    response = client_logged_in.get("/budgets/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Daily spend" in html and "Tokens" in html
    assert "82 %" in html  # 8.2 of 10
    assert "$8.20 of $10.00" in html
    assert "$13.00" in html and "130 % of limit" in html
    assert "125 %" in html and "1,250,000 tokens of 1,000,000 tokens" in html
    assert ">Warning<" in html and ">Exceeded<" in html
    assert "Europe/Berlin" in html and "agent support-agent" in html and "whole project" in html
    assert 'style="width: 100.0%"' in html  # an exceeded bar stops at the end of its track


def test_the_budget_list_explains_how_to_create_a_budget_when_there_is_none(client_logged_in):
    html = client_logged_in.get("/budgets/").content.decode()
    assert "No budgets yet" in html
    assert reverse("api-budget-list") in html
    assert "drf_create_token" in html
    assert "&quot;metric&quot;: &quot;cost_usd&quot;" in html  # the example body, escaped


def test_the_detail_chart_is_cumulative_cost_from_the_rollups_against_limit_and_thresholds(
    client_logged_in, project, now, seeded
):
    envelope = make_envelope(project, now)
    StateChange.objects.create(
        envelope=envelope,
        old_state="ok",
        new_state="warning",
        value=Decimal("5.1"),
        limit=envelope.limit,
        period_start=envelope.last_period_start,
        period_end=envelope.last_period_end,
        created_at=now - timedelta(hours=1),
    )
    make_alert(envelope, threshold=50)

    response = client_logged_in.get(f"/budgets/{envelope.pk}/")

    assert response.status_code == 200
    fig = figure(response, "usage-chart")
    usage = trace_named(fig, "Cost so far")
    expected = Rollup.objects.filter(project=project).aggregate(c=Sum("cost_usd"))["c"]
    assert expected > 0
    assert usage["y"][0] == 0
    assert usage["y"][-1] == pytest.approx(float(expected))
    assert usage["y"] == sorted(usage["y"])  # cumulative
    # one point per 15-minute bucket from the period's start to now, in Berlin time
    assert len(usage["x"]) == 1 + 6 * 4 + 1
    assert trace_named(fig, "Limit")["y"] == [10.0, 10.0]
    assert trace_named(fig, "50 % threshold")["y"] == [5.0, 5.0]
    assert trace_named(fig, "80 % threshold")["y"] == [8.0, 8.0]
    forecast = trace_named(fig, "Forecast at this pace")
    assert forecast["y"] == [pytest.approx(float(expected)), 13.0]
    html = response.content.decode()
    assert "Time (Europe/Berlin)" in json.dumps(fig)
    assert re.search(r's-ok">OK</span> <span class="faint">→</span> <span[^>]*>Warning<', html)
    assert "50 % of limit" in html
    assert "2 model calls in this scope had no known price this period" in html
    assert '<script src="/static/vendor/plotly.min.js" defer></script>' in html
    assert "cdn" not in html.lower()


def test_the_detail_of_a_per_run_cap_plots_runs_that_link_to_their_timelines(
    client_logged_in, project, now, seeded
):
    envelope = make_envelope(
        project,
        now,
        name="Run cap",
        metric=BudgetEnvelope.Metric.RUN_DURATION,
        limit=Decimal("0.5"),
        last_value=Decimal("0.9"),
        last_forecast=None,
    )
    fig = figure(client_logged_in.get(f"/budgets/{envelope.pk}/"), "usage-chart")
    runs = trace_named(fig, "Duration of a run")
    assert len(runs["y"]) == len(seeded)
    assert reverse("trace-timeline", args=[project.slug, seeded[0]]) in runs["customdata"]


def test_the_detail_links_staff_to_the_admin_and_members_only_read(client, project, now):
    envelope = make_envelope(project, now)
    admin_url = reverse("admin:budgets_budgetenvelope_change", args=[envelope.pk])
    member = UserFactory(username="viewer")
    MembershipFactory(project=project, user=member, role=Membership.Role.VIEWER)
    staff = UserFactory(username="root", is_staff=True)

    client.force_login(member)
    assert admin_url not in client.get(f"/budgets/{envelope.pk}/").content.decode()
    client.force_login(staff)
    assert admin_url in client.get(f"/budgets/{envelope.pk}/").content.decode()


def test_plotly_js_is_served_from_static(client):
    response = client.get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert len(body) > 1_000_000
    assert b"plotly" in body[:2000].lower()
    # the finder exposes that one file of the package and nothing else
    assert client.get("/static/vendor/widgetbundle.js").status_code == 404


# ------------------------------------------------------------------ alerts


def test_the_inbox_lists_firing_alerts_newest_first_with_counts_per_status(
    client_logged_in, project, now
):
    envelope = make_envelope(project, now)
    older = make_alert(envelope, threshold=50, minutes_ago=90)
    newer = make_alert(envelope, threshold=80, minutes_ago=10)
    make_alert(envelope, threshold=100, status="resolved", resolved_at=now)

    response = client_logged_in.get("/alerts/")

    assert list(response.context["page"].object_list) == [newer, older]
    assert response.context["counts"] == {
        "firing": 2,
        "acknowledged": 0,
        "resolved": 1,
        "all": 3,
    }
    resolved = client_logged_in.get("/alerts/?status=resolved").context["page"].object_list
    assert [a.threshold for a in resolved] == [100]


def test_any_member_may_acknowledge_and_it_records_who_and_when_once(client, project, now):
    envelope = make_envelope(project, now)
    alert = make_alert(envelope)
    viewer = UserFactory(username="vera")
    MembershipFactory(project=project, user=viewer, role=Membership.Role.VIEWER)
    other = UserFactory(username="otto")
    MembershipFactory(project=project, user=other, role=Membership.Role.ADMIN)

    client.force_login(viewer)
    response = client.post(f"/alerts/{alert.pk}/acknowledge/", {"next": "/alerts/"})
    assert response.status_code == 302 and response["Location"] == "/alerts/"
    alert.refresh_from_db()
    assert alert.status == "acknowledged"
    assert alert.acknowledged_by == viewer
    assert abs(alert.acknowledged_at - timezone.now()) < timedelta(seconds=10)
    first_at = alert.acknowledged_at

    client.force_login(other)
    client.post(f"/alerts/{alert.pk}/acknowledge/")
    alert.refresh_from_db()
    assert (alert.acknowledged_by, alert.acknowledged_at) == (viewer, first_at)

    html = client.get("/alerts/?status=acknowledged").content.decode()
    assert "vera" in html and "Already acknowledged by vera" in html


def test_acknowledging_needs_a_post_and_leaves_a_resolved_alert_resolved(
    client_logged_in, project, now
):
    alert = make_alert(make_envelope(project, now), status="resolved", resolved_at=now)
    assert client_logged_in.get(f"/alerts/{alert.pk}/acknowledge/").status_code == 405
    client_logged_in.post(f"/alerts/{alert.pk}/acknowledge/")
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.acknowledged_by is None


def test_acknowledge_never_redirects_off_site(client_logged_in, project, now):
    alert = make_alert(make_envelope(project, now))
    response = client_logged_in.post(
        f"/alerts/{alert.pk}/acknowledge/", {"next": "https://evil.example/"}
    )
    assert response["Location"] == f"/alerts/{alert.pk}/"


def test_the_acknowledge_form_carries_the_csrf_token(project, user, now):
    make_alert(make_envelope(project, now))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    html = client.get("/alerts/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in html
    alert = Alert.objects.get()
    assert client.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 403  # no token


def test_the_alert_detail_shows_figures_deliveries_and_the_traces_behind_it(
    client_logged_in, project, now, seeded
):
    envelope = make_envelope(project, now, agent="support-agent")
    alert = make_alert(envelope, trace_ids=[seeded[0], "f" * 32])
    ok = Channel.objects.create(project=project, name="ops mail", kind="email", config={})
    bad = Channel.objects.create(project=project, name="pager hook", kind="webhook", config={})
    Delivery.objects.create(alert=alert, channel=ok, status="sent", attempts=1, sent_at=now)
    Delivery.objects.create(
        alert=alert,
        channel=bad,
        status="failed",
        attempts=3,
        last_error="HTTP 503 Service Unavailable",
    )

    response = client_logged_in.get(f"/alerts/{alert.pk}/")

    html = response.content.decode()
    assert alert.message in html
    assert "$8.20" in html and "$10.00" in html and "82.0 %" in html
    assert "ops mail" in html and ">Sent<" in html
    assert "pager hook" in html and ">Failed<" in html and "HTTP 503" in html
    assert reverse("trace-timeline", args=[project.slug, seeded[0]]) in html
    assert "f" * 32 in html  # no longer stored, still named
    url = response.context["traces_url"]
    assert url.startswith("/traces/?project=acme-support&agent=support-agent&since=")
    assert "until=" in url
    assert url.endswith("&order=cost")  # the runs that drove the spend come first
    listed = list(client_logged_in.get(url).context["page"].object_list)
    assert {t.trace_id for t in listed} == set(seeded[:3])
    assert [t.cost_usd for t in listed] == sorted((t.cost_usd for t in listed), reverse=True)
    assert "Acknowledge" in html


# ------------------------------------------------------------------ cost explorer


def test_the_cost_explorer_totals_match_the_rollups_and_flag_unpriced_calls(
    client_logged_in, project, seeded
):
    response = client_logged_in.get(f"/cost/?project={project.slug}&window=24h")

    assert response.status_code == 200
    totals = response.context["totals"]
    sums = Rollup.objects.filter(project=project).aggregate(
        cost=Sum("cost_usd"), unpriced=Sum("unpriced_count"), runs=Sum("trace_count")
    )
    assert totals.cost_usd == sums["cost"]
    assert totals.runs == sums["runs"] == 5
    assert totals.unpriced == sums["unpriced"] == 2
    assert totals.errors == 1
    html = response.content.decode()
    assert "2 model calls had no known price and are not in these totals." in html
    assert response.context["bucket"] == "15m" and len(response.context["series"].buckets) == 96

    cost = figure(response, "cost-chart")
    assert {t["name"] for t in cost["data"]} == {"support-agent", "billing-agent"}
    assert sum(sum(t["y"]) for t in cost["data"]) == pytest.approx(float(sums["cost"]))
    assert cost["layout"]["barmode"] == "stack"
    # The hover labels write money as every page does.
    for trace in cost["data"]:
        assert trace["text"] == [usd(y) for y in trace["y"]] and trace["hovertemplate"] == "%{text}"
    unpriced = figure(response, "unpriced-chart")
    assert sum(unpriced["data"][0]["y"]) == 2
    latency = figure(response, "latency-chart")
    assert sorted(t["name"] for t in latency["data"]) == ["p50", "p95", "p99"]
    assert any(v for v in trace_named(latency, "p95")["y"])


def test_the_cost_explorer_stacks_by_model_and_picks_the_bucket_from_the_window(
    client_logged_in, project, seeded
):
    response = client_logged_in.get(f"/cost/?project={project.slug}&window=7d&group=model")
    assert response.context["bucket"] == "1h"
    names = {t["name"] for t in figure(response, "cost-chart")["data"]}
    assert names == {PRICED_MODEL, "gpt-4o"}  # the unpriced model costs nothing
    tokens = {t["name"] for t in figure(response, "tokens-chart")["data"]}
    assert UNPRICED_MODEL in tokens

    month = client_logged_in.get(f"/cost/?project={project.slug}&window=30d")
    assert month.context["bucket"] == "1d" and len(month.context["series"].buckets) == 30

    since = (timezone.now() - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    custom = client_logged_in.get(f"/cost/?project={project.slug}&since={since}")
    assert custom.context["window"] == "custom" and custom.context["bucket"] == "1h"


def test_the_cost_explorer_says_so_when_the_window_is_empty(client_logged_in, project):
    html = client_logged_in.get("/cost/").content.decode()
    assert "Nothing recorded in this window" in html
    assert "plotly.min.js" not in html


@pytest.mark.parametrize(
    ("age", "window"),
    [
        (None, "24h"),
        (timedelta(hours=20), "24h"),
        (timedelta(days=3), "7d"),
        (timedelta(days=20), "30d"),
        (timedelta(days=90), "30d"),
    ],
)
def test_without_a_chosen_window_the_cost_explorer_fits_the_projects_data(
    client_logged_in, project, now, age, window
):
    if age is not None:
        agent_run(project=project, start=now - age)
    agent_run(project=project, start=now - timedelta(minutes=5))

    response = client_logged_in.get(f"/cost/?project={project.slug}")

    assert response.context["window"] == window
    # A chosen window is kept whatever the data.
    chosen = client_logged_in.get(f"/cost/?project={project.slug}&window=30d")
    assert chosen.context["window"] == "30d"


# ------------------------------------------------------------------ navigation


def test_the_nav_links_the_pages_and_counts_firing_alerts(client_logged_in, project, now):
    envelope = make_envelope(project, now)
    make_alert(envelope, threshold=50)
    make_alert(envelope, threshold=80)
    make_alert(envelope, threshold=100, status="acknowledged")

    html = client_logged_in.get("/traces/").content.decode()

    for url in ("/budgets/", "/alerts/", "/cost/"):
        assert f'href="{url}"' in html
    assert re.search(r'title="2 firing">2<', html)


# ------------------------------------------------------------------ query counts

# session + user + firing badge, then each page's own reads; none grows with rows.
LIST_QUERIES = 6  # + projects, envelopes, the project the setup link is for
# + envelope, rollups, alerts, the thresholds they cover, channels, state changes, projects,
# the user's role (snooze and mute), the project the setup links are for
DETAIL_QUERIES = 12
ALERTS_QUERIES = 7  # + count, page, projects, counts per status
ALERT_DETAIL_QUERIES = 8  # + alert, deliveries, thresholds it covers, traces, nav projects
COST_QUERIES = 6  # + projects, rollup sums, rollup histograms, firing badge


@pytest.mark.parametrize("envelopes", [1, 8])
def test_the_budget_list_runs_a_fixed_number_of_queries(
    client_logged_in, project, now, django_assert_num_queries, envelopes
):
    for i in range(envelopes):
        make_envelope(project, now, name=f"budget {i}")
    with django_assert_num_queries(LIST_QUERIES):
        response = client_logged_in.get("/budgets/")
    assert len(response.context["rows"]) == envelopes


@pytest.mark.parametrize("runs", [1, 6])
def test_the_budget_detail_runs_a_fixed_number_of_queries(
    client_logged_in, project, now, django_assert_num_queries, runs
):
    start = bucket_floor(now) - timedelta(hours=5)
    for i in range(runs):
        agent_run(project=project, start=start + i * timedelta(minutes=40))
    rollup_pending()
    envelope = make_envelope(project, now)
    for t in (50, 80):
        make_alert(envelope, threshold=t)
    with django_assert_num_queries(DETAIL_QUERIES) as queries:
        client_logged_in.get(f"/budgets/{envelope.pk}/")
    assert not [q for q in queries.captured_queries if "traces_span" in q["sql"]]


@pytest.mark.parametrize("alerts", [1, 12])
def test_the_inbox_runs_a_fixed_number_of_queries(
    client_logged_in, project, now, django_assert_num_queries, alerts
):
    envelope = make_envelope(project, now)
    for i in range(alerts):
        make_alert(
            envelope,
            threshold=i + 1,
            status="acknowledged" if i % 2 else "firing",
            acknowledged_by=None,
        )
    with django_assert_num_queries(ALERTS_QUERIES):
        client_logged_in.get("/alerts/?status=all")


def test_the_alert_detail_runs_a_fixed_number_of_queries(
    client_logged_in, project, now, seeded, django_assert_num_queries
):
    alert = make_alert(make_envelope(project, now), trace_ids=seeded)
    with django_assert_num_queries(ALERT_DETAIL_QUERIES):
        client_logged_in.get(f"/alerts/{alert.pk}/")


@pytest.mark.parametrize("days", [1, 5])
def test_the_cost_explorer_runs_a_fixed_number_of_queries(
    client_logged_in, project, django_assert_max_num_queries, days
):
    end = datetime.now(UTC)
    for d in range(days):
        agent_run(project=project, start=end - timedelta(days=d, hours=1))
        agent_run(project=project, agent="other", start=end - timedelta(days=d, hours=2))
    rollup_pending()
    with django_assert_max_num_queries(COST_QUERIES) as queries:
        response = client_logged_in.get("/cost/?window=7d")
    assert response.context["totals"].runs == 2 * days
    assert not [q for q in queries.captured_queries if "traces_span" in q["sql"]]


def test_a_per_run_cost_alert_links_to_the_runs_over_the_cap(client_logged_in, project, now):
    envelope = make_envelope(
        project, now, name="Run cost", metric=BudgetEnvelope.Metric.RUN_COST, limit=Decimal("0.05")
    )
    alert = make_alert(envelope, kind=Alert.Kind.RUN_CAP, threshold=0)
    assert "min_cost=0.05" in client_logged_in.get(f"/alerts/{alert.pk}/").context["traces_url"]


def test_a_session_budget_is_charted_from_its_runs(client_logged_in, project, now):
    start = bucket_floor(now) - timedelta(hours=2)
    mine = [
        agent_run(project=project, session_id="sess-1", start=start + timedelta(minutes=m))[0]
        for m in (0, 50)
    ]
    agent_run(project=project, session_id="sess-2", start=start)
    rollup_pending()
    envelope = make_envelope(
        project, now, name="One session", attribute="session_id", attribute_value="sess-1"
    )

    response = client_logged_in.get(f"/budgets/{envelope.pk}/")

    usage = trace_named(figure(response, "usage-chart"), "Cost so far")
    expected = Trace.objects.filter(trace_id__in=mine).aggregate(c=Sum("cost_usd"))["c"]
    assert usage["y"][-1] == pytest.approx(float(expected))
    assert "Computed from the runs with session_id = sess-1" in response.content.decode()
    assert "session=sess-1" in response.context["traces_url"]


def test_an_agent_whose_calls_are_all_unpriced_never_shows_as_free(client_logged_in, project):
    agent_run(project=project, agent="inhouse-agent", model=UNPRICED_MODEL)
    rollup_pending()

    html = client_logged_in.get(f"/cost/?project={project.slug}&window=24h").content.decode()

    row = re.search(
        r'<td class="agent">inhouse-agent</td>\s*<td class="([^"]*)">([^<]*)</td>', html
    )
    assert row, "the agent's row is in the table"
    assert row.group(2) == "unpriced"
    assert "$0" not in row.group(2)
