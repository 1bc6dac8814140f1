"""Stored idempotency and retry findings: the planted corpus gives exactly the planted
findings (the selectors' rows, stored), once whatever the re-runs or concurrent workers;
a storm that grows updates its row; the API and the Controls page read them by window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from controls.findings import findings_detect, findings_in_window
from controls.idempotency import derived_key, duplicate_side_effects
from controls.models import Finding
from tests.concurrency import run_concurrently
from tests.controls import test_idempotency
from tests.controls.test_idempotency import SINCE, UNTIL, call, model_call, register
from tests.factories import new_trace_id, raw_span
from traces.ingest import span_batch_ingest

Kind = Finding.Kind
# The planted corpus of the selectors' known-answer tests (pytest registers a fixture under
# the name it is bound to).
planted_corpus = test_idempotency.corpus


@pytest.fixture
def corpus(planted_corpus):
    return planted_corpus


ERROR = 2


def detect(project=None, since=SINCE, until=UNTIL):
    return findings_detect(since=since, until=until, project_id=project.pk if project else None)


def stored(project, kind):
    return list(Finding.objects.filter(project=project, kind=kind).order_by("id"))


def lookup(trace_id, *, start, attempt=None, failed=True):
    attrs = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "lookup_order",
        "gen_ai.tool.call.arguments": '{"id": 9}',
        "gen_ai.agent.name": "support-agent",
    }
    if attempt is not None:
        attrs["agentops.retry.attempt"] = attempt
    return raw_span(
        trace_id=trace_id,
        name="execute_tool lookup_order",
        start=start,
        status_code=ERROR if failed else 0,
        attributes=attrs,
    )


# ------------------------------------------------------------------ known answers


def test_it_stores_exactly_the_planted_duplicate_side_effects(project, other_project, corpus):
    assert Finding.objects.count() == 0
    detect()
    derived = derived_key(
        trace_id=corpus["c"], tool="send_email", arguments='{"to":"ada@example.com"}'
    )
    rows = stored(project, Kind.DUPLICATE_SIDE_EFFECT)
    assert sorted((f.key, f.tool, f.count, f.trace_ids, f.agent) for f in rows) == sorted(
        [
            ("K-in-run", "refund_order", 2, [corpus["a"]], "support-agent"),
            ("K-across", "refund_order", 2, [corpus["b"], corpus["c"]], "support-agent"),
            (derived, "send_email", 2, [corpus["c"]], "support-agent"),
        ]
    )
    # One rule for the fact: the stored rows are the selector's rows.
    live = duplicate_side_effects(project_id=project.pk, since=SINCE, until=UNTIL)
    assert {r["key"]: [s["span_id"] for s in r["spans"]] for r in live} == {
        f.key: [s["span_id"] for s in f.spans] for f in rows
    }
    for f in rows:
        assert f.first_at == min(
            s["started_at"] for r in live if r["key"] == f.key for s in r["spans"]
        )
        assert f.last_at == next(r["last_at"] for r in live if r["key"] == f.key)
    # The other project's seven executions of K-in-run are its own finding, never ours.
    theirs = stored(other_project, Kind.DUPLICATE_SIDE_EFFECT)
    assert [(f.key, f.count, f.trace_ids) for f in theirs] == [("K-in-run", 7, [corpus["x"]])]


def test_it_stores_every_kind_the_selectors_report_and_nothing_else(project, corpus):
    counts = detect(project)
    assert counts == {"created": 3 + 2 + 2 + 2, "updated": 0}
    unkeyed = stored(project, Kind.UNKEYED_RETRY)
    assert sorted((f.trace_ids, f.tool, f.count, f.detail["succeeded"]) for f in unkeyed) == sorted(
        [([corpus["a"]], "refund_order", 2, 1), ([corpus["c"]], "send_email", 2, 2)]
    )
    storms = stored(project, Kind.RETRY_STORM)
    assert sorted((f.tool, f.detail["step"], f.count, f.detail["failed"]) for f in storms) == [
        ("chat gpt-4o-mini", "llm", 7, 0),
        ("lookup_order", "tool", 6, 5),
    ]
    assert all(f.trace_ids == [corpus["s"]] for f in storms)
    costs = stored(project, Kind.RETRIED_MODEL_COST)
    assert sorted((f.agent, f.count, f.cost_usd, f.trace_ids) for f in costs) == [
        ("billing-agent", 1, Decimal("0.25"), [corpus["f"]]),
        ("support-agent", 6, Decimal("1.5"), [corpus["s"]]),
    ]
    # Kept per agent and 15-minute bucket: the corpus's calls all start 12:00–12:06.
    t0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    bucket = (t0, t0 + timedelta(minutes=15) - timedelta(microseconds=1))
    assert {(f.first_at, f.last_at) for f in costs} == {bucket}


def test_running_again_stores_nothing_twice(project, corpus):
    detect()
    before = list(Finding.objects.order_by("id").values())
    assert detect() == {"created": 0, "updated": 0}
    call_command("detect_findings", "--since", SINCE.isoformat())
    assert list(Finding.objects.order_by("id").values()) == before


# ------------------------------------------------------------------ growth and merging


def test_a_storm_that_grows_updates_its_row(project, corpus):
    detect(project)
    storm = Finding.objects.get(project=project, kind=Kind.RETRY_STORM, tool="lookup_order")
    later = SINCE + timedelta(hours=12, minutes=30)
    span_batch_ingest(
        project_id=project.pk,
        spans=[call(corpus["s"], "lookup_order", '{"id": 1}', minutes=30 + i) for i in range(3)],
    )
    assert detect(project) == {"created": 0, "updated": 1}
    grown = Finding.objects.get(pk=storm.pk)
    assert grown.count == 9 and len(grown.spans) == 9
    assert grown.detected_at == storm.detected_at and grown.updated_at > storm.updated_at
    assert grown.last_at == later + timedelta(minutes=2)
    assert Finding.objects.filter(project=project, kind=Kind.RETRY_STORM).count() == 2


def test_a_window_that_sees_part_of_a_finding_never_shrinks_it(project):
    run = new_trace_id()
    t0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    # Ten attempts over 100 minutes: each 50-minute window sees six or more.
    span_batch_ingest(
        project_id=project.pk,
        spans=[lookup(run, start=t0 + timedelta(minutes=10 * i), attempt=i) for i in range(10)],
    )
    detect(project, since=t0, until=t0 + timedelta(minutes=55))
    (storm,) = stored(project, Kind.RETRY_STORM)
    assert storm.count == 6
    detect(project, since=t0 + timedelta(minutes=45), until=t0 + timedelta(hours=2))
    storm.refresh_from_db()
    # The later window saw attempts 5–9 (count 10 by the highest attempt number); merged
    # with the earlier view, all ten spans.
    assert storm.count == 10 and len(storm.spans) == 10
    assert storm.first_at == t0 and storm.last_at == t0 + timedelta(minutes=90)
    detect(project, since=t0 + timedelta(minutes=85), until=t0 + timedelta(hours=2))
    storm.refresh_from_db()
    assert storm.count == 10


@pytest.mark.django_db(transaction=True)
def test_concurrent_detections_store_each_finding_once(project, other_project):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    register(project)
    t0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    spans = []
    for i in range(40):
        run = new_trace_id()
        spans += [
            raw_span(
                trace_id=run,
                name="execute_tool refund_order",
                start=t0 + timedelta(seconds=i, milliseconds=j),
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "refund_order",
                    "gen_ai.tool.call.arguments": f'{{"order_id": "{i}"}}',
                    "agentops.idempotency_key": f"K{i}",
                },
            )
            for j in range(2)
        ]
    span_batch_ingest(project_id=project.pk, spans=spans)
    _, errors = run_concurrently(lambda: detect(since=t0, until=t0 + timedelta(hours=1)))
    assert errors == []
    assert Finding.objects.filter(kind=Kind.DUPLICATE_SIDE_EFFECT).count() == 40
    assert Finding.objects.filter(kind=Kind.UNKEYED_RETRY).count() == 0
    assert all(f.count == 2 for f in Finding.objects.all())


# ------------------------------------------------------------------ schedule and sweep


def test_the_beat_detects_every_minute_over_the_trailing_window(project, settings):
    from controls.tasks import detect_findings

    entry = settings.CELERY_BEAT_SCHEDULE["detect-findings"]
    assert (entry["task"], entry["schedule"], entry["options"]["expires"]) == (
        detect_findings.name,
        60,
        60,
    )
    settings.FINDINGS_WINDOW_MINUTES = 120
    now = datetime.now(UTC)
    recent, old = new_trace_id(), new_trace_id()
    span_batch_ingest(
        project_id=project.pk,
        spans=[lookup(recent, start=now - timedelta(minutes=30 - i)) for i in range(6)]
        + [lookup(old, start=now - timedelta(hours=3, minutes=-i)) for i in range(6)],
    )
    assert detect_findings.apply().get() == {"created": 1, "updated": 0}
    assert [f.trace_ids for f in stored(project, Kind.RETRY_STORM)] == [[recent]]

    call_command("detect_findings", "--since", (now - timedelta(hours=4)).date().isoformat())
    assert sorted(f.trace_ids[0] for f in stored(project, Kind.RETRY_STORM)) == sorted(
        [recent, old]
    )


def test_the_sweep_reads_across_its_day_boundaries(project):
    run = new_trace_id()
    # Six attempts straddling the midnight between two sweep days.
    start = datetime(2026, 3, 2, 23, 57, tzinfo=UTC)
    span_batch_ingest(
        project_id=project.pk,
        spans=[lookup(run, start=start + timedelta(minutes=i)) for i in range(6)],
    )
    call_command("detect_findings", "--since", "2026-03-02", "--project", project.slug)
    assert [f.count for f in stored(project, Kind.RETRY_STORM)] == [6]


def test_the_command_refuses_bad_arguments(project):
    with pytest.raises(CommandError, match="--since"):
        call_command("detect_findings", "--since", "yesterday")
    with pytest.raises(CommandError, match="--since"):
        call_command("detect_findings", "--since", "2026-13-01")
    with pytest.raises(CommandError, match="No project"):
        call_command("detect_findings", "--project", "nope")


# ------------------------------------------------------------------ reads: API and page

URL = "/api/controls/idempotency/"
WINDOW = {"since": "2026-03-02T00:00:00Z", "until": "2026-03-03T00:00:00Z"}


def test_the_api_reads_the_stored_findings_of_the_window(client_logged_in, project, corpus):
    params = {"project": "acme-support", **WINDOW}
    before = client_logged_in.get(URL, params).json()
    assert before["duplicate_side_effects"] == [] and before["retry_storms"] == []

    detect()
    body = client_logged_in.get(URL, params).json()
    keys = [r["key"] for r in body["duplicate_side_effects"]]
    assert len(keys) == 3 and {"K-across", "K-in-run"} < set(keys)
    assert [r["attempts"] for r in body["retry_storms"]] == [7, 6]
    assert [
        (r["agent"], r["retried_calls"], Decimal(r["cost_usd"])) for r in body["retried_model_cost"]
    ] == [
        ("support-agent", 6, Decimal("1.5")),
        ("billing-agent", 1, Decimal("0.25")),
    ]
    storm = body["retry_storms"][1]
    assert storm["trace_id"] == corpus["s"] and storm["spans"][0]["started_at"].endswith("Z")

    # The window applies to the findings' span times: K-across's executions are at 12:00
    # and 14:00, the in-run duplicates at 12:00–12:01.
    late = client_logged_in.get(
        URL, {"project": "acme-support", "since": "2026-03-02T13:00:00Z", "until": WINDOW["until"]}
    ).json()
    assert [r["key"] for r in late["duplicate_side_effects"]] == ["K-across"]
    assert late["unkeyed_retries"] == [] and late["retried_model_cost"] == []
    empty = client_logged_in.get(
        URL,
        {
            "project": "acme-support",
            "since": "2026-03-03T00:00:00Z",
            "until": "2026-03-04T00:00:00Z",
        },
    ).json()
    assert all(empty[k] == [] for k in ("duplicate_side_effects", "retry_storms"))


def test_retried_model_calls_are_summed_over_the_buckets_the_window_touches(project):
    run = new_trace_id()
    t0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    spans = [model_call(run, 1, minutes=m) for m in (30, 90, 150)]  # 12:30, 13:30, 14:30
    span_batch_ingest(project_id=project.pk, spans=spans)
    detect(project)
    rows = findings_in_window(
        project_id=project.pk, since=t0 + timedelta(minutes=40), until=t0 + timedelta(hours=2)
    )["retried_model_cost"]
    # 12:40–14:00 touches the buckets from 12:30 to 13:45: the first two calls.
    assert [(r["retried_calls"], r["cost_usd"]) for r in rows] == [(2, Decimal("0.5"))]


def test_the_controls_page_lists_the_findings_of_the_window_with_links(client_logged_in, project):
    register(project)
    now = datetime.now(UTC) - timedelta(minutes=10)
    dup, storm = new_trace_id(), new_trace_id()
    refund = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "refund_order",
        "gen_ai.tool.call.arguments": '{"order_id": "Z9"}',
        "agentops.idempotency_key": "refund-Z9",
    }
    span_batch_ingest(
        project_id=project.pk,
        spans=[
            raw_span(
                trace_id=dup, name="refund", start=now + timedelta(seconds=i), attributes=refund
            )
            for i in range(2)
        ]
        + [lookup(storm, start=now + timedelta(seconds=i)) for i in range(7)],
    )
    page = client_logged_in.get("/controls/?project=acme-support").content.decode()
    assert 'id="no-findings"' in page  # nothing detected yet

    detect(project, since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    page = client_logged_in.get("/controls/?project=acme-support").content.decode()
    assert 'id="findings-duplicates"' in page and "refund-Z9" in page
    assert f"/p/acme-support/traces/{dup}/" in page
    assert 'id="findings-storms"' in page and f"/p/acme-support/traces/{storm}/" in page
    assert 'id="no-unkeyed"' in page and 'id="no-model-retries"' in page

    # A window that ends before the runs shows none of them.
    Finding.objects.update(
        first_at=now - timedelta(hours=3), last_at=now - timedelta(hours=2, minutes=30)
    )
    page = client_logged_in.get("/controls/?project=acme-support&hours=1").content.decode()
    assert 'id="no-findings"' in page


def test_another_projects_findings_stay_hidden(outsider_client, client_logged_in, project, corpus):
    detect()
    assert outsider_client.get(URL, {"project": "acme-support", **WINDOW}).status_code == 404
    theirs = outsider_client.get(URL, {"project": "other-team", **WINDOW}).json()
    assert [r["key"] for r in theirs["duplicate_side_effects"]] == ["K-in-run"]
    assert len(theirs["unkeyed_retries"]) == 0
    ours = client_logged_in.get(URL, {"project": "acme-support", **WINDOW}).json()
    assert all(corpus["x"] not in r["runs"] for r in ours["duplicate_side_effects"])


def test_the_admin_lists_findings_read_only(project, corpus):
    from django.test import Client

    from tests.factories import UserFactory

    detect(project)
    admin = Client()
    admin.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = admin.get("/admin/controls/finding/", {"kind__exact": "retry_storm"})
    assert response.status_code == 200
    assert b"lookup_order" in response.content and b"K-in-run" not in response.content
    finding = Finding.objects.filter(project=project).first()
    assert admin.get("/admin/controls/finding/add/").status_code == 403
    page = admin.get(f"/admin/controls/finding/{finding.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
