"""Budgets API: envelopes, channels, alerts and acknowledgement, cost series — by
session, HTTP Basic, personal token or project key, scoped to the caller's projects."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from budgets.models import Alert, BudgetEnvelope, Channel
from budgets.validation import EnvelopeForm
from tests.factories import UserFactory, agent_run
from traces.models import Rollup
from traces.rollups import bucket_floor, rollup_pending
from traces.services import ingest_key_create
from traces.tokens import personal_token_create

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory


@pytest.fixture
def staff(db):
    return UserFactory(username="root", is_staff=True)


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def key_client(ingest_secret):
    return Client(headers={"Authorization": f"Bearer {ingest_secret}"})


@pytest.fixture
def envelope(project):
    return BudgetEnvelope.objects.create(
        project=project,
        name="Monthly spend",
        limit=Decimal("100"),
        thresholds=[50, 80, 100],
        last_value=Decimal("42"),
    )


@pytest.fixture
def foreign_envelope(other_project):
    return BudgetEnvelope.objects.create(
        project=other_project, name="Their spend", limit=Decimal("5"), thresholds=[100]
    )


def alert_for(envelope, *, threshold=80, status="firing", minutes_ago=5) -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        envelope=envelope,
        project=envelope.project,
        kind=Alert.Kind.THRESHOLD,
        threshold=threshold,
        period_start=now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        period_end=now + timedelta(days=31),
        value=Decimal("81"),
        limit=envelope.limit,
        message=f"{envelope.name} is at {threshold}%",
        status=status,
        created_at=now - timedelta(minutes=minutes_ago),
    )


def post_json(client, url, data, method="post"):
    return getattr(client, method)(url, data, content_type="application/json")


VALID = {
    "project": "acme-support",
    "name": "Daily tokens",
    "metric": "tokens",
    "limit": "2000000",
    "period": "day",
    "timezone": "Europe/Berlin",
    "thresholds": [80, 100],
}


# ------------------------------------------------------------------ reading envelopes


def test_members_read_their_projects_envelopes_only(client_logged_in, envelope, foreign_envelope):
    body = client_logged_in.get("/api/budgets/").json()
    assert [e["name"] for e in body["results"]] == ["Monthly spend"]
    item = body["results"][0]
    assert item["project"] == "acme-support"
    assert item["limit"] == "100.000000"
    assert item["usage_percent"] == 42.0
    assert item["thresholds"] == [50, 80, 100]
    assert client_logged_in.get(f"/api/budgets/{envelope.pk}/").status_code == 200
    assert client_logged_in.get(f"/api/budgets/{foreign_envelope.pk}/").status_code == 404


def test_anonymous_requests_are_401(client, envelope):
    response = client.get("/api/budgets/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"]
    assert client.post("/api/budgets/", VALID, content_type="application/json").status_code == 401
    assert client.get("/api/cost/").status_code == 401


# ------------------------------------------------------------------ writing envelopes


def test_staff_create_update_and_delete_envelopes(staff_client, project):
    channel = Channel.objects.create(project=project, name="ops", kind="email", config={})
    response = post_json(staff_client, "/api/budgets/", VALID | {"channels": [channel.pk]})
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["channels"] == [channel.pk]
    assert created["state"] == "ok" and created["last_value"] is None
    envelope = BudgetEnvelope.objects.get(pk=created["id"])
    assert envelope.timezone == "Europe/Berlin" and envelope.limit == Decimal(2_000_000)

    url = f"/api/budgets/{envelope.pk}/"
    response = post_json(staff_client, url, {"thresholds": [100, 50]}, method="patch")
    assert response.status_code == 200
    assert response.json()["thresholds"] == [50, 100]  # normalised as in the admin

    assert staff_client.delete(url).status_code == 204
    assert not BudgetEnvelope.objects.filter(pk=envelope.pk).exists()


def test_thresholds_default_to_50_80_100(staff_client, project):
    data = {k: v for k, v in VALID.items() if k != "thresholds"}
    assert post_json(staff_client, "/api/budgets/", data).json()["thresholds"] == [50, 80, 100]


def test_members_may_not_write_envelopes(client_logged_in, envelope):
    assert post_json(client_logged_in, "/api/budgets/", VALID).status_code == 403
    url = f"/api/budgets/{envelope.pk}/"
    assert post_json(client_logged_in, url, {"limit": "1"}, method="patch").status_code == 403
    assert client_logged_in.delete(url).status_code == 403
    envelope.refresh_from_db()
    assert envelope.limit == 100


def form_errors(data: dict) -> set[str]:
    """The fields the admin's form objects to, for the same data."""
    form_data = dict(data)
    if "project" in form_data:
        from traces.models import Project

        form_data["project"] = Project.objects.get(slug=form_data["project"]).pk
    form_data.setdefault("forecast", True)
    form_data.setdefault("enabled", True)
    if isinstance(form_data.get("thresholds"), list):
        form_data["thresholds"] = ", ".join(str(t) for t in form_data["thresholds"])
    form = EnvelopeForm(data=form_data)
    assert not form.is_valid()
    return set(form.errors)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metric": "p95_run_latency_s", "period": "month"}, "period"),
        ({"thresholds": [0, 80]}, "thresholds"),
        ({"thresholds": [80, 80]}, "thresholds"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"period": "rolling"}, "rolling_minutes"),
        ({"period": "rolling", "rolling_minutes": 20}, "rolling_minutes"),
        ({"limit": "0"}, "limit"),
        ({"metric": "error_rate", "limit": "150", "period": "day"}, "limit"),
        ({"attribute": "user_id", "attribute_value": ""}, "attribute_value"),
        ({"attribute": "user_id", "attribute_value": "u1", "model": "gpt-4o"}, "model"),
        ({"metric": "no_such_metric"}, "metric"),
    ],
)
def test_validation_errors_are_per_field_as_in_the_admin(staff_client, project, change, field):
    data = VALID | change
    response = post_json(staff_client, "/api/budgets/", data)
    assert response.status_code == 400
    body = response.json()
    assert field in body, body
    assert all(isinstance(m, str) and m for m in body[field])
    assert field in form_errors(data)


def test_a_channel_of_another_project_is_refused(staff_client, project, other_project):
    theirs = Channel.objects.create(project=other_project, name="theirs", kind="email", config={})
    response = post_json(staff_client, "/api/budgets/", VALID | {"channels": [theirs.pk]})
    assert response.status_code == 400
    assert "another project" in response.json()["channels"][0]
    assert post_json(staff_client, "/api/budgets/", VALID | {"channels": [999]}).status_code == 400


def test_a_duplicate_name_is_a_field_error(staff_client, envelope):
    response = post_json(staff_client, "/api/budgets/", VALID | {"name": envelope.name})
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_a_partial_update_is_validated_with_the_stored_values(staff_client, project):
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="p95",
        metric="p95_run_latency_s",
        limit=Decimal("4"),
        period="day",
        thresholds=[100],
    )
    response = post_json(
        staff_client, f"/api/budgets/{envelope.pk}/", {"period": "month"}, method="patch"
    )
    assert response.status_code == 400 and "period" in response.json()


# ------------------------------------------------------------------ other credentials


def test_a_personal_token_authenticates_staff_writes(staff, project):
    secret = personal_token_create(user=staff).secret
    client = Client(headers={"Authorization": f"Token {secret}"})
    assert client.get("/api/budgets/").status_code == 200
    response = client.post("/api/budgets/", VALID, content_type="application/json")
    assert response.status_code == 201


def test_http_basic_authenticates(staff, user, envelope):
    def basic(username):
        raw = base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()
        return Client(headers={"Authorization": f"Basic {raw}"})

    assert basic("ada").get("/api/budgets/").json()["count"] == 1
    assert (
        basic("ada").post("/api/budgets/", VALID, content_type="application/json").status_code
        == 403
    )
    assert (
        basic("root").post("/api/budgets/", VALID, content_type="application/json").status_code
        == 201
    )
    bad = Client(headers={"Authorization": "Basic " + base64.b64encode(b"ada:nope").decode()})
    assert bad.get("/api/budgets/").status_code == 401


def test_a_project_key_reads_its_own_project_and_never_writes(
    key_client, envelope, foreign_envelope
):
    alert = alert_for(envelope)
    theirs = alert_for(foreign_envelope)

    assert [e["id"] for e in key_client.get("/api/budgets/").json()["results"]] == [envelope.pk]
    assert key_client.get(f"/api/budgets/{foreign_envelope.pk}/").status_code == 404
    assert [a["id"] for a in key_client.get("/api/alerts/").json()["results"]] == [alert.pk]
    assert key_client.get(f"/api/alerts/{theirs.pk}/").status_code == 404
    assert key_client.get("/api/cost/").status_code == 200

    response = key_client.post("/api/budgets/", VALID, content_type="application/json")
    assert response.status_code == 403
    assert "never change" in response.json()["detail"]
    url = f"/api/budgets/{envelope.pk}/"
    assert key_client.patch(url, {"limit": "1"}, content_type="application/json").status_code == 403
    assert key_client.delete(url).status_code == 403
    assert key_client.post(f"/api/alerts/{alert.pk}/acknowledge/").status_code == 403
    assert key_client.get("/api/channels/").status_code == 403
    alert.refresh_from_db()
    assert alert.status == "firing"


def test_a_revoked_or_unknown_key_is_401(client, project):
    assert (
        Client(headers={"Authorization": "Bearer ak_nope"}).get("/api/budgets/").status_code == 401
    )


# ------------------------------------------------------------------ channels


def test_channels_are_for_staff_only(client_logged_in, client):
    assert client_logged_in.get("/api/channels/").status_code == 403
    assert client.get("/api/channels/").status_code == 401


def test_a_webhook_secret_is_shown_once_on_create_and_kept_on_update(
    staff_client, project, settings
):
    settings.ALERTS_ALLOW_PRIVATE_URLS = True
    response = post_json(
        staff_client,
        "/api/channels/",
        {
            "project": "acme-support",
            "name": "hook",
            "kind": "webhook",
            "config": {"url": "http://127.0.0.1:9/hook"},
        },
    )
    assert response.status_code == 201, response.json()
    secret = response.json()["config"]["secret"]
    assert len(secret) >= 16
    pk = response.json()["id"]

    shown = staff_client.get(f"/api/channels/{pk}/").json()
    assert "secret" not in shown["config"] and shown["has_secret"] is True
    assert all(
        "secret" not in c["config"] for c in staff_client.get("/api/channels/").json()["results"]
    )

    response = post_json(
        staff_client,
        f"/api/channels/{pk}/",
        {"config": {"url": "http://127.0.0.1:10/other"}},
        method="patch",
    )
    assert response.status_code == 200
    assert "secret" not in response.json()["config"]
    stored = Channel.objects.get(pk=pk).config
    assert stored["secret"] == secret and stored["url"] == "http://127.0.0.1:10/other"


def test_channel_config_errors_name_the_setting(staff_client, project):
    response = post_json(
        staff_client,
        "/api/channels/",
        {
            "project": "acme-support",
            "name": "mail",
            "kind": "email",
            "config": {"to": ["not-an-address"]},
        },
    )
    assert response.status_code == 400
    errors = response.json()["config"]
    assert list(errors) == ["to.0"] and "not-an-address" in errors["to.0"][0]

    response = post_json(
        staff_client,
        "/api/channels/",
        {
            "project": "acme-support",
            "name": "mail",
            "kind": "email",
            "config": {"to": ["a@b.test"], "cc": 1},
        },
    )
    assert response.status_code == 400 and "cc" in response.json()["config"]

    response = post_json(
        staff_client,
        "/api/channels/",
        {"project": "acme-support", "name": "mail", "kind": "pigeon", "config": {}},
    )
    assert response.status_code == 400 and "kind" in response.json()


def test_staff_manage_email_channels(staff_client, project):
    data = {
        "project": "acme-support",
        "name": "mail",
        "kind": "email",
        "config": {"to": ["ops@acme.test"]},
    }
    response = post_json(staff_client, "/api/channels/", data)
    assert response.status_code == 201
    pk = response.json()["id"]
    assert staff_client.get(f"/api/channels/{pk}/").json()["config"] == {"to": ["ops@acme.test"]}
    assert post_json(staff_client, "/api/channels/", data).json() == {
        "name": ["A channel with this name already exists in this project."]
    }
    assert staff_client.delete(f"/api/channels/{pk}/").status_code == 204


# ------------------------------------------------------------------ alerts


def test_alerts_are_listed_newest_first_and_filtered_by_status_and_project(
    client_logged_in, envelope, foreign_envelope
):
    old = alert_for(envelope, threshold=50, minutes_ago=60)
    new = alert_for(envelope, threshold=80, minutes_ago=5)
    done = alert_for(envelope, threshold=100, status="resolved", minutes_ago=30)
    alert_for(foreign_envelope)

    ids = [a["id"] for a in client_logged_in.get("/api/alerts/").json()["results"]]
    assert ids == [new.pk, done.pk, old.pk]  # 5, 30 and 60 minutes ago
    firing = client_logged_in.get("/api/alerts/?status=firing").json()["results"]
    assert [a["id"] for a in firing] == [new.pk, old.pk]
    assert client_logged_in.get("/api/alerts/?project=other-team").json()["count"] == 0
    assert firing[0]["envelope_name"] == "Monthly spend" and firing[0]["deliveries"] == []
    response = client_logged_in.get("/api/alerts/?status=loud")
    assert response.status_code == 400 and "status" in response.json()


def test_acknowledging_records_who_and_is_idempotent(client_logged_in, client, envelope, user):
    alert = alert_for(envelope)
    url = f"/api/alerts/{alert.pk}/acknowledge/"
    body = client_logged_in.post(url).json()
    assert body["status"] == "acknowledged" and body["acknowledged_by"] == "ada"
    first = body["acknowledged_at"]

    other = UserFactory(username="bob", is_staff=True)
    client.force_login(other)
    again = client.post(url).json()
    assert again["acknowledged_by"] == "ada" and again["acknowledged_at"] == first


def test_an_outsider_cannot_acknowledge(outsider_client, envelope):
    alert = alert_for(envelope)
    assert outsider_client.post(f"/api/alerts/{alert.pk}/acknowledge/").status_code == 404
    alert.refresh_from_db()
    assert alert.status == "firing"


# ------------------------------------------------------------------ cost series


@pytest.fixture
def seeded(project):
    start = bucket_floor(datetime.now(UTC)) - timedelta(hours=5)
    agent_run(project=project, agent="support-agent", start=start)
    agent_run(project=project, agent="support-agent", start=start + timedelta(hours=1))
    agent_run(
        project=project,
        agent="billing-agent",
        model="gpt-4o",
        start=start + timedelta(hours=2),
        error=True,
    )
    agent_run(
        project=project,
        agent="billing-agent",
        model="no-price-llm",
        start=start + timedelta(hours=3),
    )
    rollup_pending()
    return start


def test_the_cost_series_matches_the_rollups(client_logged_in, project, seeded):
    since = (seeded - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = client_logged_in.get(f"/api/cost/?since={since}&bucket=1h&group_by=agent").json()

    sums = Rollup.objects.filter(project=project).aggregate(
        cost=Sum("cost_usd"), inp=Sum("input_tokens"), out=Sum("output_tokens")
    )
    assert body["project"] == "acme-support" and body["bucket"] == "1h"
    assert Decimal(body["totals"]["cost_usd"]) == sums["cost"]
    assert body["totals"]["tokens"] == sums["inp"] + sums["out"]
    assert body["totals"]["runs"] == 4 and body["totals"]["errors"] == 1
    assert body["totals"]["unpriced"] == 2
    # The bucket of the unpriced run alone has no known cost: null, not 0.
    assert sum(Decimal(b["cost_usd"] or 0) for b in body["buckets"]) == sums["cost"]
    assert sum(b["runs"] for b in body["buckets"]) == 4
    assert len(body["buckets"]) == 7  # the partial hour before `since` through now
    busy = [b for b in body["buckets"] if b["runs"]]
    assert all(b["p50_ms"] <= b["p95_ms"] <= b["p99_ms"] for b in busy)
    # costliest first: one gpt-4o run costs more than two gpt-4o-mini runs
    assert [g["key"] for g in body["groups"]] == ["billing-agent", "support-agent"]
    assert {g["key"] for b in busy for g in b["groups"]} == {"support-agent", "billing-agent"}
    by_agent = {g["key"]: g for g in body["groups"]}
    assert by_agent["billing-agent"]["unpriced"] == 2 and by_agent["billing-agent"]["errors"] == 1


def test_the_cost_series_groups_by_model_and_defaults_to_the_last_day(client_logged_in, seeded):
    body = client_logged_in.get("/api/cost/?group_by=model").json()
    assert body["bucket"] == "15m" and len(body["buckets"]) in (96, 97)
    assert {g["key"] for g in body["groups"]} >= {"gpt-4o-mini", "gpt-4o", "no-price-llm"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("bucket=5m", "bucket"),
        ("group_by=team", "group_by"),
        ("since=yesterday", "since"),
        ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
        ("since=2020-01-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
        ("since=2025-01-01T00:00:00Z&until=2025-03-01T00:00:00Z&bucket=15m", "bucket"),
        ("tz=Nowhere/Land", "tz"),
    ],
)
def test_cost_series_parameters_are_validated_per_field(client_logged_in, project, query, field):
    response = client_logged_in.get(f"/api/cost/?{query}")
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_the_cost_series_of_another_project_is_404(client_logged_in, other_project):
    assert client_logged_in.get("/api/cost/?project=other-team").status_code == 404


def test_the_cost_series_needs_a_project_when_several_are_visible(
    staff_client, project, other_project
):
    response = staff_client.get("/api/cost/")
    assert response.status_code == 400 and "project" in response.json()
    assert staff_client.get("/api/cost/?project=other-team").status_code == 200


def test_the_cost_series_counts_days_in_the_requested_zone(client_logged_in, project):
    agent_run(project=project, start=datetime(2026, 3, 10, 23, 30, tzinfo=UTC))
    rollup_pending()
    body = client_logged_in.get(
        "/api/cost/?since=2026-03-10T00:00:00%2B01:00&until=2026-03-12T00:00:00%2B01:00"
        "&bucket=1d&tz=Europe/Berlin"
    ).json()
    assert [b["start"] for b in body["buckets"]] == ["2026-03-09T23:00:00Z", "2026-03-10T23:00:00Z"]
    assert [b["runs"] for b in body["buckets"]] == [0, 1]  # 00:30 in Berlin is the 11th


def test_ingest_keys_are_separate_per_project(other_project, envelope):
    other_key = ingest_key_create(project=other_project).secret
    client = Client(headers={"Authorization": f"Bearer {other_key}"})
    assert client.get(f"/api/budgets/{envelope.pk}/").status_code == 404
    assert client.get("/api/cost/?project=acme-support").status_code == 404


def test_the_example_on_the_empty_budgets_page_is_a_valid_request(staff_client, project):
    from budgets.views import api_example

    response = staff_client.post(
        "/api/budgets/", api_example("acme-support"), content_type="application/json"
    )
    assert response.status_code == 201, response.json()
