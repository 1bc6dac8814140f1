"""Decision memory: decisions extracted from `agentops.decision.*` spans once, joined to the
person's action, searched full-text (SQLite FTS5 by default, PostgreSQL full-text search
with DATABASE_URL), similar past decisions, and the shadow agreement interval against a
hand-computed Wilson interval."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from agentops_sdk import record_decision
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from controls.decision_memory import (
    DecisionFilters,
    agreement_by_version,
    decision_action_record,
    decision_list,
    decision_outcome,
    decision_search,
    decisions_record,
    record_from_span,
    similar_decisions,
)
from controls.models import DecisionRecord, PendingDecisionAction
from controls.tasks import record_decisions
from rollouts.models import PromotionCriteria
from rollouts.readiness import readiness_evaluate
from tests.factories import new_trace_id, raw_span
from traces.ingest import span_batch_ingest
from traces.models import Outcome, Span

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def decision_span(project, *, context, action, options=("refund", "escalate"), at=None, **extra):
    trace_id = extra.pop("trace_id", None) or new_trace_id()
    attrs = {
        "gen_ai.agent.name": extra.pop("agent", "support-agent"),
        "gen_ai.agent.version": extra.pop("version", "1.0"),
        "agentops.prompt.version": "p7",
        "agentops.autonomy.phase": "shadow",
        "agentops.decision.context": context,
        "agentops.decision.options": json.dumps(list(options)),
        "agentops.decision.action": action,
        **extra,
    }
    span = raw_span(trace_id=trace_id, name="decide", start=at or T0, attributes=attrs)
    span_batch_ingest(project_id=project.pk, spans=[span])
    return trace_id, span.span_id


# ------------------------------------------------------------------ extraction


def test_a_decision_span_is_recorded_once(project):
    trace_id, span_id = decision_span(
        project,
        context="Customer asks for a refund of order 42, delivered broken",
        action="refund",
        **{"agentops.decision.confidence": 0.82, "agentops.decision.policies": ["refunds-v2"]},
    )
    span_batch_ingest(  # a span without a decision is not one
        project_id=project.pk, spans=[raw_span(trace_id=trace_id, start=T0)]
    )
    assert decisions_record() == 1
    assert decisions_record() == 0
    record_decisions()  # the beat's task, over the trailing window
    call_command("record_decisions")
    [record] = DecisionRecord.objects.all()
    assert (record.trace_id, record.span_id) == (trace_id, span_id)
    assert record.agent == "support-agent" and record.agent_version == "1.0"
    assert record.prompt_version == "p7" and record.phase == "shadow"
    assert record.options == ["refund", "escalate"]
    assert record.action == "refund"
    assert str(record.confidence) == "0.820"
    assert record.policies == ["refunds-v2"]
    assert record.decided_at == T0


def test_hostile_attribute_values_are_kept_or_dropped_not_fatal(project):
    decision_span(
        project,
        context="x",
        action="a" * 900,
        **{"agentops.confidence": "high", "agentops.decision.policies": "one-policy"},
    )
    decisions_record()
    record = DecisionRecord.objects.get()
    assert len(record.action) == 500
    assert record.confidence is None
    assert record.policies == ["one-policy"]


def test_record_from_span_reads_the_fallback_confidence(project):
    decision_span(project, context="c", action="a", **{"agentops.confidence": 0.4})
    span = Span.objects.get()
    assert str(record_from_span(span).confidence) == "0.400"


# ------------------------------------------------------------------ the person's action


def test_the_persons_action_is_joined_to_the_decision(project):
    trace_id, _ = decision_span(project, context="refund broken kettle", action="refund")
    # Not extracted yet: the action extracts the run's decision first.
    record = decision_action_record(project_id=project.pk, trace_id=trace_id, action=" Refund ")
    assert record.human_action == "Refund" and record.human_action_at is not None
    assert DecisionRecord.objects.get().human_action == "Refund"


def test_the_action_api(client_logged_in, project, ingest_secret, other_project):
    trace_id, span_id = decision_span(project, context="refund kettle", action="refund")
    response = client_logged_in.post(
        "/api/decisions/action",
        {"project": project.slug, "trace_id": trace_id, "span_id": span_id, "action": "escalate"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "overridden"
    keyed = client_logged_in.post(
        "/api/decisions/action",
        {"trace_id": trace_id, "action": "refund"},
        content_type="application/json",
        headers={"authorization": f"Bearer {ingest_secret}"},
    )
    assert keyed.status_code == 200 and keyed.json()["outcome"] == "agreed"
    for body, status in [
        ({"trace_id": "zz", "action": "x"}, 400),
        ({"trace_id": new_trace_id(), "action": "x"}, 202),
        ({"trace_id": trace_id, "action": ""}, 400),
        ({"trace_id": trace_id, "action": "x", "project": other_project.slug}, 403),
    ]:
        answer = client_logged_in.post(
            "/api/decisions/action",
            body,
            content_type="application/json",
            headers={"authorization": f"Bearer {ingest_secret}"},
        )
        assert answer.status_code == status, (body, answer.content)


def test_an_action_before_its_decision_is_kept_and_joined(client_logged_in, project, ingest_secret):
    from controls import decision_memory

    trace_id = new_trace_id()
    key = {"authorization": f"Bearer {ingest_secret}"}
    early = client_logged_in.post(
        "/api/decisions/action",
        {"trace_id": trace_id, "action": "refund"},
        content_type="application/json",
        headers=key,
    )
    assert early.status_code == 202, early.content
    assert early.json()["status"] == "pending"
    assert PendingDecisionAction.objects.filter(trace_id=trace_id).count() == 1
    # The span arrives later; the beat's run records it and joins the action.
    decision_span(project, context="refund kettle", action="refund", trace_id=trace_id)
    record_decisions()
    record = DecisionRecord.objects.get(trace_id=trace_id)
    assert (record.human_action, decision_outcome(record)) == ("refund", "agreed")
    assert not PendingDecisionAction.objects.exists()
    # A named span the run does not have yet stays kept; past PENDING_KEEP it is dropped.
    client_logged_in.post(
        "/api/decisions/action",
        {"trace_id": trace_id, "span_id": "ab" * 8, "action": "decline"},
        content_type="application/json",
        headers=key,
    )
    assert decision_memory.pending_actions_join() == 0
    assert PendingDecisionAction.objects.count() == 1
    later = timezone.now() + decision_memory.PENDING_KEEP + timedelta(minutes=1)
    decision_memory.pending_actions_join(now=later)
    assert not PendingDecisionAction.objects.exists()


def test_waiting_actions_are_capped_per_project(client, project, ingest_secret, monkeypatch):
    from controls import decision_memory

    monkeypatch.setattr(decision_memory, "PENDING_MAX_PER_PROJECT", 2)
    first = new_trace_id()
    answers = [
        client.post(
            "/api/decisions/action",
            {"trace_id": trace_id, "action": "x"},
            content_type="application/json",
            headers={"authorization": f"Bearer {ingest_secret}"},
        ).status_code
        for trace_id in (first, new_trace_id(), new_trace_id(), first)
    ]
    # Full: a new run's action is refused; replacing a kept one is not.
    assert answers == [202, 202, 429, 202]


# ------------------------------------------------------------------ search


@pytest.fixture
def corpus(project):
    rows = [
        ("Customer asks for a refund: the kettle arrived broken", "refund", "refund"),
        ("Customer wants a refund for a late parcel", "refund", "escalate"),
        ("Password reset requested from a new device", "verify_identity", ""),
        ("Kettle is broken after a week, customer asks for a replacement", "replace", "replace"),
    ]
    for i, (context, action, human) in enumerate(rows):
        trace_id, _ = decision_span(
            project, context=context, action=action, at=T0 + timedelta(minutes=i)
        )
        if human:
            decisions_record()
            decision_action_record(project_id=project.pk, trace_id=trace_id, action=human)
    decisions_record()
    return {r.context: r for r in DecisionRecord.objects.all()}


def contexts(qs):
    return [r.context for r in qs]


def test_search_over_context_and_action(project, corpus):
    def search(**filters):
        return contexts(decision_list(project_id=project.pk, filters=DecisionFilters(**filters)))

    found = search(q="broken kettle")
    assert sorted(found) == sorted(
        [
            "Customer asks for a refund: the kettle arrived broken",
            "Kettle is broken after a week, customer asks for a replacement",
        ]
    )
    assert search(q="verify_identity") == ["Password reset requested from a new device"]
    assert len(search(q="refund")) == 2
    assert search(q="refund", outcome="agreed") == [
        "Customer asks for a refund: the kettle arrived broken"
    ]
    assert search(q="refund", outcome="overridden") == ["Customer wants a refund for a late parcel"]
    assert search(outcome="pending") == ["Password reset requested from a new device"]
    assert search(action="replace") == [
        "Kettle is broken after a week, customer asks for a replacement"
    ]
    assert search(q="kettle", agent="other-agent") == []
    assert search(q="nothing-like-this") == []
    # Hostile queries are words or nothing, never an FTS syntax error.
    for q in ['"', "AND OR NOT", "kettle*)(", "NEAR(", "'; drop table x; --", "\x00"]:
        search(q=q)


def test_a_search_ranks_its_newest_matches_only(project, corpus, monkeypatch):
    from controls import decision_memory

    def search(q):
        return contexts(decision_list(project_id=project.pk, filters=DecisionFilters(q=q)))

    assert len(search("refund")) == 2
    monkeypatch.setattr(decision_memory, "RANK_CANDIDATES", 1)
    assert search("refund") == ["Customer wants a refund for a late parcel"]  # the newer


def test_search_index_follows_edits_and_deletes(project, corpus):
    record = corpus["Password reset requested from a new device"]
    record.context = "Lost parcel, customer wants tracking"
    record.save()
    assert contexts(
        decision_list(project_id=project.pk, filters=DecisionFilters(q="tracking"))
    ) == ["Lost parcel, customer wants tracking"]
    record.delete()
    assert not decision_list(project_id=project.pk, filters=DecisionFilters(q="tracking"))


def test_search_uses_the_index_on_postgresql(project, corpus):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: the GIN index on the document")
    # The query's document is the indexed expression (on a few rows the planner would
    # rather scan, or use the project's index: both are forbidden here).
    qs = decision_search(DecisionRecord.objects.all(), "kettle")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off; SET enable_indexscan = off")
        plan = qs.explain()
        cursor.execute("RESET enable_seqscan; RESET enable_indexscan")
    assert "decisionrecord_search_idx" in plan, plan


def test_similar_past_decisions(project, corpus):
    new_trace, _ = decision_span(
        project,
        context="The kettle is broken, the customer asks what to do",
        action="refund",
        at=T0 + timedelta(minutes=30),
    )
    decisions_record()
    record = DecisionRecord.objects.get(trace_id=new_trace)
    similar = contexts(similar_decisions(record))
    assert similar[:2] == [
        "Kettle is broken after a week, customer asks for a replacement",
        "Customer asks for a refund: the kettle arrived broken",
    ] or similar[:2] == [
        "Customer asks for a refund: the kettle arrived broken",
        "Kettle is broken after a week, customer asks for a replacement",
    ]
    assert "Password reset requested from a new device" not in similar
    assert record.context not in similar


def test_similar_ranks_only_the_agents_latest_decisions(project, corpus, monkeypatch):
    from controls import decision_memory

    new_trace, _ = decision_span(
        project, context="The kettle is broken", action="refund", at=T0 + timedelta(minutes=30)
    )
    decisions_record()
    record = DecisionRecord.objects.get(trace_id=new_trace)
    assert len(similar_decisions(record)) >= 2
    # With one candidate, only the latest earlier decision can be offered.
    monkeypatch.setattr(decision_memory, "SIMILAR_CANDIDATES", 1)
    latest = (
        DecisionRecord.objects.filter(agent=record.agent, decided_at__lte=record.decided_at)
        .exclude(pk=record.pk)
        .order_by("-decided_at", "-id")
        .first()
    )
    assert [r.pk for r in similar_decisions(record)] in ([latest.pk], [])


def test_counts_are_capped_and_say_so(client_logged_in, project, corpus, monkeypatch):
    from traces.paging import CappedPaginator

    monkeypatch.setattr(CappedPaginator, "cap", 2)
    api = client_logged_in.get(f"/api/decisions/?project={project.slug}").json()
    assert (api["count"], api["count_capped"]) == (2, True)
    assert len(api["results"]) == 2  # pages reach as far as the count
    page = client_logged_in.get(f"/decisions/?project={project.slug}").content.decode()
    assert "2+ decisions" in page
    monkeypatch.setattr(CappedPaginator, "cap", 100)
    api = client_logged_in.get(f"/api/decisions/?project={project.slug}").json()
    assert (api["count"], api["count_capped"]) == (4, False)


def test_the_cached_agreement_follows_a_new_action(project, corpus, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    before = {r["agent_version"]: r["n"] for r in agreement_by_version(project_id=project.pk)}
    pending = corpus["Password reset requested from a new device"]
    decision_action_record(project_id=project.pk, trace_id=pending.trace_id, action="deny")
    after = {r["agent_version"]: r["n"] for r in agreement_by_version(project_id=project.pk)}
    assert after["1.0"] == before["1.0"] + 1


def test_pages_and_api(client_logged_in, outsider_client, project, corpus):
    Outcome.objects.create(
        project=project,
        trace_id=corpus["Customer asks for a refund: the kettle arrived broken"].trace_id,
        name="csat",
        value=5.0,
        source=Outcome.Source.API,
        recorded_at=T0,
        received_at=T0,
    )
    page = client_logged_in.get(f"/decisions/?project={project.slug}&q=kettle")
    assert page.status_code == 200
    html = page.content.decode()
    assert "arrived broken" in html and "Password reset" not in html
    assert 'id="agreement-table"' in html
    empty = client_logged_in.get(f"/decisions/?project={project.slug}&q=zebra&outcome=bogus")
    assert empty.status_code == 200 and 'id="no-decisions"' in empty.content.decode()
    assert client_logged_in.get(f"/decisions/?project={project.slug}&page=x").status_code == 200

    api = client_logged_in.get(f"/api/decisions/?project={project.slug}&q=refund").json()
    assert api["count"] == 2
    assert {a["agent_version"]: (a["n"], a["agreed"]) for a in api["agreement"]} == {"1.0": (3, 2)}
    assert (
        client_logged_in.get(f"/api/decisions/?project={project.slug}&outcome=x").status_code == 400
    )
    assert client_logged_in.get("/api/decisions/").status_code == 400

    newest = corpus["Kettle is broken after a week, customer asks for a replacement"]
    detail = client_logged_in.get(f"/api/decisions/{newest.pk}/").json()
    similar = {s["context"]: s for s in detail["similar"]}
    refund = similar["Customer asks for a refund: the kettle arrived broken"]
    assert refund["outcome"] == "agreed"
    assert refund["run_outcomes"] == [{"kind": "kpi", "name": "csat", "value": 5.0}]
    one = client_logged_in.get(f"/decisions/{newest.pk}/")
    assert one.status_code == 200 and "Similar past decisions" in one.content.decode()
    assert "arrived broken" in one.content.decode()

    # Another project's member sees none of it.
    assert outsider_client.get(f"/decisions/{newest.pk}/").status_code == 404
    assert outsider_client.get(f"/api/decisions/{newest.pk}/").status_code == 404
    assert outsider_client.get(f"/api/decisions/?project={project.slug}").status_code == 404
    assert outsider_client.get(f"/decisions/?project={project.slug}").status_code == 404
    controls = client_logged_in.get(f"/controls/?project={project.slug}").content.decode()
    assert 'id="decisions-link"' in controls


# ------------------------------------------------------------------ agreement


def test_agreement_interval_known_answer(project):
    """18 of 20 agreed: Wilson 95 % = (0.6990, 0.9721) (z = 1.959964); 0 of 3 agreed:
    (0, 0.5615)."""
    for i in range(20):
        trace_id, _ = decision_span(
            project, context=f"case {i}", action="approve", version="2.0", at=T0
        )
        decision_action_record(
            project_id=project.pk, trace_id=trace_id, action="APPROVE" if i < 18 else "deny"
        )
    for i in range(3):
        trace_id, _ = decision_span(project, context=f"old {i}", action="approve", version="1.0")
        decision_action_record(project_id=project.pk, trace_id=trace_id, action="deny")
    decision_span(project, context="no person yet", action="approve", version="2.0")
    decisions_record()
    rows = {r["agent_version"]: r for r in agreement_by_version(project_id=project.pk)}
    new, old = rows["2.0"], rows["1.0"]
    assert (new["n"], new["agreed"], new["rate"]) == (20, 18, 0.9)
    assert math.isclose(new["low"], 0.6990, abs_tol=5e-4)
    assert math.isclose(new["high"], 0.9721, abs_tol=5e-4)
    assert (old["n"], old["agreed"], old["low"]) == (3, 0, 0.0)
    assert math.isclose(old["high"], 0.5615, abs_tol=5e-4)


def test_shadow_agreement_is_a_promotion_criterion(project):
    """45 of 50 shadow decisions of version 2.0 agreed: 90 %, Wilson 95 % = (78.6 %, 95.7 %).
    The criterion is met when the lower bound reaches the minimum: 75 % yes, 80 % no."""
    for i in range(50):
        trace_id, _ = decision_span(project, context=f"case {i}", action="refund", version="2.0")
        decision_action_record(
            project_id=project.pk, trace_id=trace_id, action="refund" if i < 45 else "decline"
        )
    # Not counted: another version, another phase, outside the window.
    for extra in (
        {"version": "1.0"},
        {"agentops.autonomy.phase": "bounded", "version": "2.0"},
        {"version": "2.0", "at": T0 - timedelta(days=30)},
    ):
        trace_id, _ = decision_span(project, context="other", action="refund", **extra)
        decision_action_record(project_id=project.pk, trace_id=trace_id, action="decline")
    criteria = PromotionCriteria.objects.create(
        project=project,
        agent="support-agent",
        from_phase="shadow",
        to_phase="bounded",
        min_runs=0,
        require_no_kpi_regression=False,
        window_days=7,
        min_shadow_agreement=Decimal(75),
    )
    today = datetime.now(UTC).date()

    def check(version="2.0"):
        (found,) = [
            c
            for c in readiness_evaluate(criteria=criteria, today=today, version=version).checks
            if c.name == "Shadow agreement"
        ]
        return found

    met = check()
    assert met.met, met.evidence
    assert "90.0 % (45 of 50 decisions of version 2.0; 95 % CI 78.6–95.7 %)" in met.evidence
    criteria.min_shadow_agreement = Decimal(80)
    assert not check().met
    # Every version of the phase in the window: 45 of 51.
    assert "45 of 51 decisions;" in check(version="").evidence
    assert not check(version="9.9").met
    assert "no decisions of version 9.9" in check(version="9.9").evidence
    # Not asked for: no check at all.
    criteria.min_shadow_agreement = None
    names = [c.name for c in readiness_evaluate(criteria=criteria, today=today).checks]
    assert "Shadow agreement" not in names


# ------------------------------------------------------------------ SDK


def test_sdk_records_the_attributes_on_the_current_span():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("agent"):
        record_decision(
            {"order": 42, "ask": "refund"},
            ["refund", "escalate"],
            "refund",
            confidence=0.9,
            policies=["refunds"],
        )
    [span] = exporter.get_finished_spans()
    assert json.loads(span.attributes["agentops.decision.context"]) == {
        "order": 42,
        "ask": "refund",
    }
    assert list(span.attributes["agentops.decision.options"]) == ["refund", "escalate"]
    assert span.attributes["agentops.decision.action"] == "refund"
    assert span.attributes["agentops.decision.confidence"] == 0.9
    assert list(span.attributes["agentops.decision.policies"]) == ["refunds"]
    with pytest.raises(ValueError):
        record_decision("c", [], "a", confidence=2)
