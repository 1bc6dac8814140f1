"""Times as the reader lives them: a chosen zone, else the browser's, else TIME_ZONE."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from budgets.evaluate import forecast_absent_reason
from budgets.models import BudgetEnvelope
from tests.factories import agent_run
from traces.models import UserPreference
from traces.rollups import rollup_pending

pytestmark = pytest.mark.django_db

KOLKATA = ZoneInfo("Asia/Kolkata")
# A run two days ago at hh:00 UTC: hh:30 in Kolkata (+05:30).
START = (timezone.now() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)


def _started(response) -> list[str]:
    """The trace list's start column, as shown."""
    return re.findall(r'<td class="nowrap num"[^>]*>([^<]+)</td>', response.content.decode())


def _kolkata(dt: datetime, fmt: str) -> str:
    return dt.astimezone(KOLKATA).strftime(fmt)


@pytest.fixture
def run(project):
    trace_id, _ = agent_run(project=project, start=START)
    return trace_id


# ------------------------------------------------------------------ the preference


def test_it_saves_a_chosen_zone_and_the_pages_follow_it(client_logged_in, user, run):
    response = client_logged_in.post(
        reverse("time-zone"), {"time_zone": "Asia/Kolkata", "next": "/traces/"}
    )
    assert response.status_code == 302 and response["Location"] == "/traces/"
    assert UserPreference.objects.get(user=user).time_zone == "Asia/Kolkata"

    page = client_logged_in.get("/traces/")
    assert _started(page) == [_kolkata(START, "%Y-%m-%d %H:%M:%S")]
    assert "(Asia/Kolkata)" in page.content.decode()


@pytest.mark.parametrize("bad", ["Mars/Olympus_Mons", "Europe/Paris\x00", "x" * 500, "../etc"])
def test_it_refuses_an_unknown_zone_with_a_form_error(client_logged_in, user, bad):
    response = client_logged_in.post(reverse("time-zone"), {"time_zone": bad})
    assert response.status_code == 400
    assert "is not an IANA time zone" in response.content.decode()
    assert not UserPreference.objects.filter(user=user).exists()


def test_choosing_the_browser_again_clears_the_choice(client_logged_in, user, run):
    client_logged_in.post(reverse("time-zone"), {"time_zone": "Europe/Paris"})
    client_logged_in.post(reverse("time-zone"), {"time_zone": ""})
    assert UserPreference.objects.get(user=user).time_zone == ""
    client_logged_in.cookies["tz"] = "Asia/Kolkata"
    assert _started(client_logged_in.get("/traces/")) == [_kolkata(START, "%Y-%m-%d %H:%M:%S")]


def test_the_chosen_zone_wins_over_the_browser_cookie_and_follows_to_another_login(user, run):
    UserPreference.objects.create(user=user, time_zone="Asia/Kolkata")
    other_browser = Client()
    other_browser.cookies["tz"] = "America/New_York"
    other_browser.force_login(user)
    assert _started(other_browser.get("/traces/")) == [_kolkata(START, "%Y-%m-%d %H:%M:%S")]


def test_the_browser_cookie_is_used_when_nothing_is_chosen(client_logged_in, project, run):
    client_logged_in.cookies["tz"] = "Asia/Kolkata"
    page = client_logged_in.get(reverse("trace-timeline", args=[project.slug, run]))
    html = page.content.decode()
    assert _kolkata(START, "%Y-%m-%d %H:%M:%S") in html
    assert " IST</b>" in html  # the zone's abbreviation next to the start time


@pytest.mark.parametrize("bad", ["Not/AZone", "", "UTC;x", "Europe%2FParis"])
def test_a_bad_cookie_is_ignored(client_logged_in, run, settings, bad):
    settings.TIME_ZONE = "UTC"
    client_logged_in.cookies["tz"] = bad
    page = client_logged_in.get("/traces/")
    assert page.status_code == 200
    assert _started(page) == [START.strftime("%Y-%m-%d %H:%M:%S")]


def test_every_page_loads_the_zone_script_and_links_the_setting(client_logged_in):
    html = client_logged_in.get("/traces/").content.decode()
    assert re.search(r'<script src="[^"]*agentops/timezone\.js" defer></script>', html)
    assert 'href="/accounts/time-zone/?next=' in html


def test_the_api_keeps_answering_in_utc(client_logged_in, project, run):
    client_logged_in.cookies["tz"] = "Asia/Kolkata"
    body = client_logged_in.get(f"/api/traces/?project={project.slug}").json()
    text = json.dumps(body)
    assert "+05:30" not in text
    assert START.strftime("%Y-%m-%dT%H:%M:%S") in text


# ------------------------------------------------------------------ date pickers


def test_the_since_until_filters_are_read_in_the_readers_zone(client_logged_in, project):
    client_logged_in.cookies["tz"] = "Asia/Kolkata"
    inside, _ = agent_run(project=project, start=START)  # hh:30 IST
    agent_run(project=project, start=START + timedelta(hours=1))  # (hh+1):30 IST
    agent_run(project=project, start=START - timedelta(hours=1))  # (hh-1):30 IST
    local = START.astimezone(KOLKATA)
    day = local.strftime("%Y-%m-%d")
    response = client_logged_in.get(
        "/traces/",
        {
            "since": day,
            "since_time": local.replace(minute=0).strftime("%H:%M"),
            "until": day,
            "until_time": (local.replace(minute=0) + timedelta(hours=1)).strftime("%H:%M"),
        },
    )
    assert [t.trace_id for t in response.context["page"]] == [inside]
    assert response.context["filters"].since == START - timedelta(minutes=30)
    html = response.content.decode()
    # The pickers echo the local date and a 24-hour time.
    assert f'type="date" id="f-since" name="since" value="{day}"' in html
    assert f'name="since_time" value="{local.replace(minute=0):%H:%M}"' in html


def test_a_time_that_is_not_24_hour_is_a_clear_error(client_logged_in):
    response = client_logged_in.get("/traces/", {"since": "2026-11-30", "since_time": "3:00 PM"})
    assert response.status_code < 500
    assert "since time must be HH:MM, 24-hour" in response.content.decode()


def test_iso_with_an_offset_still_works_whatever_the_zone(client_logged_in, project):
    client_logged_in.cookies["tz"] = "Asia/Kolkata"
    since = START.strftime("%Y-%m-%dT%H:%M:%SZ")
    response = client_logged_in.get("/traces/", {"since": since})
    assert response.context["filters"].since == START


# ------------------------------------------------------------------ charts


def test_the_cost_chart_x_values_are_in_the_readers_zone(client_logged_in, project):
    agent_run(project=project, start=START + timedelta(minutes=5))
    rollup_pending()
    client_logged_in.cookies["tz"] = "Asia/Kolkata"
    local = START.astimezone(KOLKATA)
    response = client_logged_in.get(
        "/cost/",
        {
            "project": project.slug,
            "since": local.strftime("%Y-%m-%d"),
            "since_time": local.strftime("%H:%M"),
            "until": local.strftime("%Y-%m-%d"),
            "until_time": (local + timedelta(hours=2)).strftime("%H:%M"),
        },
    )
    assert response.context["start"] == START
    html = response.content.decode()
    data = re.search(r'<script id="cost-chart-data" type="application/json">(.*?)</script>', html)
    figure = json.loads(data.group(1))
    xs = [x for t in figure["data"] for x in t["x"]]
    assert _kolkata(START, "%Y-%m-%d %H:%M:%S") in xs
    assert START.strftime("%Y-%m-%d %H:%M:%S") not in xs
    assert "Asia/Kolkata" in html


# ------------------------------------------------------------------ days and windows


def test_the_overview_counts_utc_days_and_says_so_with_times_in_the_readers_zone(
    client_logged_in, project
):
    now = timezone.now()
    agent_run(project=project, start=max(now - timedelta(minutes=1), now.replace(hour=0, minute=0)))
    client_logged_in.cookies["tz"] = "Asia/Kolkata"
    html = client_logged_in.get(f"/overview/?project={project.slug}").content.decode()
    assert "UTC day" in html
    assert re.search(r"· \d\d:\d\d IST", html)
    assert re.search(r"\d\d:\d\d UTC", html) is None


def test_a_rolling_window_shows_as_the_trailing_range_in_the_readers_zone(
    client_logged_in, project
):
    end = datetime(2026, 12, 2, 13, 15, tzinfo=UTC)
    BudgetEnvelope.objects.create(
        project=project,
        name="Day of tokens",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("10"),
        period=BudgetEnvelope.Period.ROLLING,
        rolling_minutes=1440,
        timezone="America/Chicago",  # not used: a rolling window has no zone
        last_period_start=end - timedelta(days=1),
        last_period_end=end,
        last_value=Decimal("1"),
        last_evaluated_at=end,
    )
    client_logged_in.cookies["tz"] = "Europe/Paris"
    html = client_logged_in.get("/budgets/").content.decode()
    assert 'Last 24 h · <span class="nowrap">Dec 1, 14:15 – Dec 2, 14:15</span>' in html
    assert "(Europe/Paris)" in html
    assert "a rolling window has no end to forecast to" in html


def test_a_missing_forecast_says_why(client_logged_in, project):
    start = datetime(2026, 12, 1, tzinfo=UTC)
    end = datetime(2027, 1, 1, tzinfo=UTC)
    monthly = BudgetEnvelope(
        metric=BudgetEnvelope.Metric.COST, period=BudgetEnvelope.Period.MONTH, timezone="UTC"
    )
    early = forecast_absent_reason(
        monthly, start=start, end=end, now=start + timedelta(days=1), tz=UTC, evaluated=True
    )
    assert early == (
        "not enough data yet: forecasts start after 10 % of the period, at Dec 4, 02:24"
    )
    later = start + timedelta(days=10)
    assert (
        forecast_absent_reason(monthly, start=start, end=end, now=later, tz=UTC, evaluated=True)
        == ""
    )
    monthly.metric = BudgetEnvelope.Metric.P95_LATENCY
    assert "only cost and token budgets" in forecast_absent_reason(
        monthly, start=start, end=end, now=later, tz=UTC, evaluated=True
    )

    # The detail page says it under the "—".
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Daily spend",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("10"),
        period=BudgetEnvelope.Period.MONTH,
        timezone="UTC",
    )
    html = client_logged_in.get(reverse("budget-detail", args=[envelope.pk])).content.decode()
    note = re.search(r'<span id="forecast-note">([^<]+)</span>', html)
    assert note
    assert note.group(1).startswith("not enough data yet") or (
        note.group(1) == "not evaluated in this period yet"
    )


def test_it_goes_back_only_to_a_page_of_the_console(client_logged_in):
    response = client_logged_in.post(
        reverse("time-zone"), {"time_zone": "UTC", "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("time-zone")


def test_snoozing_until_a_24_hour_time_reads_it_in_the_readers_zone(client_logged_in, project):
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Monthly spend",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("10"),
        period=BudgetEnvelope.Period.MONTH,
    )
    client_logged_in.cookies["tz"] = "Asia/Kolkata"
    day = (timezone.now() + timedelta(days=2)).astimezone(KOLKATA).date()
    url = reverse("budget-snooze", args=[envelope.pk])

    page = client_logged_in.get(reverse("budget-detail", args=[envelope.pk])).content.decode()
    assert 'name="until_time"' in page and 'type="datetime-local"' not in page

    refused = client_logged_in.post(url, {"until": f"{day}", "until_time": "9pm"}, follow=True)
    assert "Give the time as HH:MM, 24-hour" in refused.content.decode()
    client_logged_in.post(url, {"until": f"{day}", "until_time": "21:30"})
    envelope.refresh_from_db()
    assert envelope.snoozed_until == datetime(day.year, day.month, day.day, 21, 30, tzinfo=KOLKATA)
