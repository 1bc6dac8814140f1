"""Budget evaluation against real ingested runs folded into real rollups.

A run of `agent_run` uses 310 tokens (250 in, 60 out) and lasts 0.79 s with one tool
call; with the price override below it costs exactly $0.31."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum

from budgets.evaluate import budget_evaluate, budgets_evaluate_all
from budgets.models import Alert, BudgetEnvelope, Channel, Delivery, State, StateChange
from tests.factories import agent_run
from traces.ingest import span_batch_ingest
from traces.models import ModelPriceOverride, Rollup, Trace
from traces.rollups import rollup_pending

Metric = BudgetEnvelope.Metric
Period = BudgetEnvelope.Period

NOW = datetime(2025, 11, 14, 10, 7, tzinfo=UTC)  # a Friday
CREATED = datetime(2025, 1, 1, tzinfo=UTC)
TOKENS_PER_RUN = 310
MODEL = "acme-large"


@pytest.fixture
def priced(db):
    ModelPriceOverride.objects.create(
        model=MODEL,
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok=Decimal(1000),
        output_per_mtok=Decimal(1000),
    )


def runs(project, n, *, at, agent="support-agent", user="", model=MODEL, **kwargs) -> list[str]:
    """n runs starting a second apart from `at`, ingested and rolled up."""
    ids = []
    for i in range(n):
        trace_id, spans = agent_run(
            project=project,
            agent=agent,
            start=at + timedelta(seconds=i),
            model=model,
            store=False,
            **kwargs,
        )
        if user:
            spans[-1].attributes["user.id"] = user  # the root span
        span_batch_ingest(project_id=project.pk, spans=spans)
        ids.append(trace_id)
    rollup_pending()
    return ids


def make_envelope(project, **kwargs) -> BudgetEnvelope:
    fields = {
        "name": "Support bot",
        "metric": Metric.TOKENS,
        "limit": Decimal(1000),
        "period": Period.DAY,
        "timezone": "UTC",
        "thresholds": [50, 80, 100],
        "forecast": False,
    } | kwargs
    envelope = BudgetEnvelope.objects.create(project=project, **fields)
    # Set up long before the NOW of these tests (created_at is set on insert).
    BudgetEnvelope.objects.filter(pk=envelope.pk).update(created_at=CREATED)
    envelope.refresh_from_db()
    return envelope


def alerts(envelope, **filters) -> list[tuple]:
    return list(
        Alert.objects.filter(envelope=envelope, **filters)
        .order_by("period_start", "kind", "threshold")
        .values_list("kind", "threshold", "period_start")
    )


def changes(envelope) -> list[tuple[str, str]]:
    return list(
        StateChange.objects.filter(envelope=envelope)
        .order_by("created_at", "pk")
        .values_list("old_state", "new_state")
    )


# ------------------------------------------------------------------ transitions


def test_it_moves_ok_warning_exceeded_with_one_alert_per_threshold(project):
    env = make_envelope(project)
    day = datetime(2025, 11, 14, tzinfo=UTC)
    seen = []
    for minute in (1, 2, 3, 4):
        runs(project, 1, at=NOW.replace(minute=minute))
        ev = budget_evaluate(envelope=env, now=NOW.replace(minute=minute, second=30))
        seen.append((ev.state, int(ev.value), sorted(a.threshold for a in ev.alerts)))

    assert seen == [
        (State.OK, 310, []),
        (State.WARNING, 620, [50]),
        (State.WARNING, 930, [80]),
        (State.EXCEEDED, 1240, [100]),
    ]
    assert changes(env) == [("ok", "warning"), ("warning", "exceeded")]
    assert alerts(env) == [("threshold", t, day) for t in (50, 80, 100)]
    env.refresh_from_db()
    assert env.state == State.EXCEEDED
    assert env.last_value == Decimal(1240)
    assert (env.last_period_start, env.last_period_end) == (day, day + timedelta(days=1))
    assert env.state_since == NOW.replace(minute=4, second=30)
    change = StateChange.objects.get(envelope=env, new_state="exceeded")
    assert (change.value, change.limit, change.period_start) == (1240, 1000, day)


def test_a_jump_past_several_thresholds_alerts_each_once_under_the_highest(project):
    env = make_envelope(project)
    runs(project, 4, at=NOW - timedelta(minutes=5))

    ev = budget_evaluate(envelope=env, now=NOW)

    assert ev.state == State.EXCEEDED
    assert sorted(a.threshold for a in ev.alerts) == [50, 80, 100]
    assert changes(env) == [("ok", "exceeded")]
    top = Alert.objects.get(envelope=env, threshold=100)
    assert top.covered_by is None
    assert top.message == (
        "Daily token budget 'Support bot' passed 50 %, 80 % and 100 % at once: at 124 % "
        "(1,240 tokens of 1,000 tokens, period Nov 14 UTC)"
    )
    lower = Alert.objects.filter(envelope=env, threshold__lt=100)
    assert sorted(lower.values_list("threshold", "covered_by")) == [(50, top.pk), (80, top.pk)]
    assert lower.get(threshold=50).message == (
        "Daily token budget 'Support bot' passed 50 %: at 124 % "
        "(1,240 tokens of 1,000 tokens, period Nov 14 UTC)"
    )


def test_only_thresholds_crossed_in_the_same_evaluation_are_grouped(project):
    env = make_envelope(project)
    runs(project, 2, at=NOW - timedelta(minutes=5))  # 62 %: 50 alone
    budget_evaluate(envelope=env, now=NOW)
    runs(project, 2, at=NOW - timedelta(minutes=3))  # 124 %: 80 and 100 together
    budget_evaluate(envelope=env, now=NOW + timedelta(minutes=1))

    top = Alert.objects.get(envelope=env, threshold=100)
    assert sorted(Alert.objects.filter(envelope=env).values_list("threshold", "covered_by")) == [
        (50, None),
        (80, top.pk),
        (100, None),
    ]
    assert "passed 80 % and 100 % at once" in top.message


def test_evaluating_again_creates_nothing_new(project):
    env = make_envelope(project)
    runs(project, 4, at=NOW - timedelta(minutes=5))
    budgets_evaluate_all(now=NOW)

    for later in (NOW, NOW + timedelta(minutes=1), NOW + timedelta(hours=3)):
        summary = budgets_evaluate_all(now=later)
        assert (summary.state_changes, summary.alerts) == (0, 0)

    assert Alert.objects.filter(envelope=env).count() == 3
    assert StateChange.objects.filter(envelope=env).count() == 1
    env.refresh_from_db()
    assert env.last_evaluated_at == NOW + timedelta(hours=3)
    assert env.state_since == NOW


def test_a_new_period_starts_clean(project):
    env = make_envelope(project)
    runs(project, 4, at=NOW - timedelta(minutes=5))
    budget_evaluate(envelope=env, now=NOW)

    tomorrow = datetime(2025, 11, 15, tzinfo=UTC)
    ev = budget_evaluate(envelope=env, now=tomorrow + timedelta(minutes=20))
    assert (ev.state, ev.value, ev.period_start) == (State.OK, 0, tomorrow)
    assert changes(env) == [("ok", "exceeded"), ("exceeded", "ok")]
    # Yesterday's alerts are over with yesterday.
    assert not Alert.objects.filter(envelope=env).exclude(status=Alert.Status.RESOLVED).exists()

    runs(project, 2, at=tomorrow + timedelta(hours=1))
    ev = budget_evaluate(envelope=env, now=tomorrow + timedelta(hours=1, minutes=5))
    assert [(a.threshold, a.period_start) for a in ev.alerts] == [(50, tomorrow)]
    assert alerts(env, threshold=50) == [
        ("threshold", 50, datetime(2025, 11, 14, tzinfo=UTC)),
        ("threshold", 50, tomorrow),
    ]


def test_a_late_span_counts_in_its_bucket_and_its_period(project):
    hourly = make_envelope(project, name="Hourly", period=Period.HOUR, thresholds=[100])
    daily = make_envelope(project, name="Daily", limit=Decimal(10_000))
    ten = datetime(2025, 11, 14, 10, tzinfo=UTC)
    runs(project, 3, at=ten + timedelta(minutes=50))
    assert budget_evaluate(envelope=hourly, now=ten + timedelta(minutes=59)).value == 930

    # A run that started at 10:55 reaches the console at 11:03, after the hour's end.
    runs(project, 1, at=ten + timedelta(minutes=55))
    bucket = Rollup.objects.filter(bucket_start=ten + timedelta(minutes=45))
    assert bucket.aggregate(n=Sum("input_tokens"))["n"] == 4 * 250

    summary = budgets_evaluate_all(now=ten + timedelta(hours=1, minutes=3))
    by_name = {ev.name: ev for ev in summary.evaluations}
    assert by_name["Daily"].value == 1240
    # The state describes the new hour; the hour that just ended still gets its alert.
    assert (by_name["Hourly"].state, by_name["Hourly"].value) == (State.OK, 0)
    assert alerts(hourly) == [("threshold", 100, ten)]
    assert [a.period_start for a in by_name["Hourly"].late_alerts] == [ten]
    assert summary.alerts == 1
    assert alerts(daily) == []


def test_a_budget_created_after_a_period_does_not_alert_about_it(project):
    ten = datetime(2025, 11, 14, 10, tzinfo=UTC)
    runs(project, 4, at=ten + timedelta(minutes=50))
    hourly = make_envelope(project, period=Period.HOUR, thresholds=[100])
    BudgetEnvelope.objects.filter(pk=hourly.pk).update(created_at=ten + timedelta(hours=1))

    summary = budgets_evaluate_all(now=ten + timedelta(hours=1, minutes=3))

    assert (summary.evaluated, summary.alerts) == (1, 0)


# ------------------------------------------------------------------ rolling windows


def test_a_rolling_window_alerts_once_per_excursion_and_resolves_on_recovery(project):
    env = make_envelope(project, period=Period.ROLLING, rolling_minutes=60, thresholds=[80, 100])
    ten = datetime(2025, 11, 14, 10, tzinfo=UTC)
    runs(project, 4, at=ten)

    first = budget_evaluate(envelope=env, now=ten + timedelta(minutes=10))
    assert (first.state, first.period_start) == (State.EXCEEDED, ten - timedelta(minutes=45))
    assert sorted(a.threshold for a in first.alerts) == [80, 100]

    # The window has moved on twice and still holds the runs: same excursion, no alert.
    still = budget_evaluate(envelope=env, now=ten + timedelta(minutes=40))
    assert (still.state, still.period_start, still.alerts) == (
        State.EXCEEDED,
        ten - timedelta(minutes=15),
        [],
    )

    recovered = budget_evaluate(envelope=env, now=ten + timedelta(hours=1, minutes=20))
    assert (recovered.state, recovered.value) == (State.OK, 0)
    assert changes(env) == [("ok", "exceeded"), ("exceeded", "ok")]
    assert recovered.state_change.period_start == ten + timedelta(minutes=30)
    resolved = Alert.objects.filter(envelope=env)
    assert {(a.status, a.resolved_at) for a in resolved} == {
        (Alert.Status.RESOLVED, ten + timedelta(hours=1, minutes=20))
    }

    # A later excursion is a new one.
    runs(project, 3, at=ten + timedelta(hours=2))
    again = budget_evaluate(envelope=env, now=ten + timedelta(hours=2, minutes=5))
    assert again.state == State.WARNING
    assert [a.threshold for a in again.alerts] == [80]
    assert Alert.objects.filter(envelope=env, status=Alert.Status.FIRING).count() == 1


# ------------------------------------------------------------------ forecast


def test_a_pace_over_the_limit_raises_one_forecast_alert(project):
    env = make_envelope(
        project, period=Period.MONTH, limit=Decimal(3000), forecast=True, thresholds=[100]
    )
    runs(project, 5, at=NOW - timedelta(hours=1))

    ev = budget_evaluate(envelope=env, now=NOW)
    # 1,550 tokens after 44.7 % of November: on pace for about 3,467.
    assert ev.state == State.WARNING
    assert 3460 < ev.forecast < 3475
    assert [(a.kind, a.threshold) for a in ev.alerts] == [("forecast", 0)]
    assert ev.alerts[0].message.startswith("Monthly token budget 'Support bot' is on pace for 3,4")
    assert ev.alerts[0].message.endswith(
        " of 3,000 tokens (now 1,550 tokens, 51 %, period Nov 1–30 UTC)"
    )
    assert budget_evaluate(envelope=env, now=NOW + timedelta(hours=1)).alerts == []
    assert alerts(env) == [("forecast", 0, datetime(2025, 11, 1, tzinfo=UTC))]


def test_no_forecast_before_a_tenth_of_the_period(project):
    env = make_envelope(
        project, period=Period.MONTH, limit=Decimal(3000), forecast=True, thresholds=[100]
    )
    early = datetime(2025, 11, 2, 12, tzinfo=UTC)  # 5 % of November
    runs(project, 5, at=early - timedelta(hours=1))

    ev = budget_evaluate(envelope=env, now=early)

    assert (ev.state, ev.forecast, ev.alerts) == (State.OK, None, [])


def test_a_forecast_is_shown_but_not_alerted_when_turned_off(project):
    env = make_envelope(
        project, period=Period.MONTH, limit=Decimal(3000), forecast=False, thresholds=[100]
    )
    runs(project, 5, at=NOW - timedelta(hours=1))

    ev = budget_evaluate(envelope=env, now=NOW)

    assert (ev.state, ev.alerts) == (State.OK, [])
    env.refresh_from_db()
    assert env.last_forecast > 3000


# ------------------------------------------------------------------ cost, latency, errors


def test_a_cost_alert_lists_the_most_expensive_traces(project, priced):
    env = make_envelope(
        project,
        metric=Metric.COST,
        period=Period.MONTH,
        timezone="Europe/Paris",
        limit=Decimal("1.50"),
        thresholds=[80, 100],
    )
    cheap = runs(project, 2, at=NOW - timedelta(hours=2), tools=0)
    dear = runs(project, 2, at=NOW - timedelta(hours=1), tools=3)
    # Make one run dearer than the others.
    Trace.objects.filter(trace_id=dear[1]).update(cost_usd=Decimal("0.90"))

    ev = budget_evaluate(envelope=env, now=NOW)

    assert ev.value == Decimal("1.24")  # rollups: 4 × $0.31
    (alert,) = ev.alerts
    assert alert.message == (
        "Monthly cost budget 'Support bot' passed 80 %: at 82 % "
        "($1.24 of $1.50, period Nov 1–30 Europe/Paris)"
    )
    assert alert.trace_ids[0] == dear[1]
    assert set(alert.trace_ids) == {*cheap, *dear}
    assert (alert.value, alert.limit) == (Decimal("1.24"), Decimal("1.50"))
    assert alert.period_start == datetime(2025, 10, 31, 23, tzinfo=UTC)


def test_it_narrows_rollups_by_agent_and_model(project, priced):
    support = make_envelope(project, name="support", agent="support-agent")
    billing = make_envelope(project, name="billing", agent="billing-agent")
    big_model = make_envelope(project, name="model", model=MODEL, metric=Metric.COST)
    runs(project, 2, at=NOW - timedelta(hours=1), agent="support-agent")
    runs(project, 1, at=NOW - timedelta(hours=1), agent="billing-agent", model="gpt-4o-mini")

    values = {ev.name: ev.value for ev in budgets_evaluate_all(now=NOW).evaluations}

    assert values == {"support": 620, "billing": 310, "model": Decimal("0.62")}
    assert support.pk and billing.pk and big_model.pk


def test_p95_latency_and_error_rate_come_from_rollups(project):
    latency = make_envelope(
        project, name="latency", metric=Metric.P95_LATENCY, limit=Decimal("0.5"), period=Period.HOUR
    )
    errors = make_envelope(
        project, name="errors", metric=Metric.ERROR_RATE, limit=Decimal(20), period=Period.HOUR
    )
    runs(project, 3, at=NOW - timedelta(minutes=5))
    failed = runs(project, 1, at=NOW - timedelta(minutes=4), error=True)

    by_name = {ev.name: ev for ev in budgets_evaluate_all(now=NOW).evaluations}

    assert Decimal("0.76") <= by_name["latency"].value <= Decimal("0.82")  # 0.79 s ± 4 %
    assert by_name["latency"].state == State.EXCEEDED
    assert (by_name["errors"].value, by_name["errors"].state) == (25, State.EXCEEDED)
    assert Alert.objects.get(envelope=errors, threshold=100).trace_ids == failed
    assert latency.pk


# ------------------------------------------------------------------ per-run caps


def test_a_per_run_cap_alerts_once_with_the_offending_runs(project):
    env = make_envelope(
        project, metric=Metric.RUN_DURATION, limit=Decimal(1), thresholds=[100], period=Period.DAY
    )
    runs(project, 2, at=NOW - timedelta(hours=1), tools=1)  # 0.79 s each
    slow = runs(project, 2, at=NOW - timedelta(minutes=30), tools=10)  # 1.33 s each

    ev = budget_evaluate(envelope=env, now=NOW)

    assert (ev.state, ev.value) == (State.EXCEEDED, Decimal("1.33"))
    (alert,) = ev.alerts
    assert (alert.kind, alert.threshold) == ("run_cap", 0)
    assert sorted(alert.trace_ids) == sorted(slow)
    assert alert.message == (
        "Daily per-run duration cap 'Support bot': 2 runs at or over 1.00 s, "
        "the worst at 1.33 s (period Nov 14 UTC)"
    )
    assert budget_evaluate(envelope=env, now=NOW + timedelta(minutes=1)).alerts == []


def test_a_per_run_cost_cap_under_its_limit_stays_ok(project, priced):
    env = make_envelope(project, metric=Metric.RUN_COST, limit=Decimal("0.50"), thresholds=[100])
    runs(project, 2, at=NOW - timedelta(hours=1))

    ev = budget_evaluate(envelope=env, now=NOW)

    assert (ev.state, ev.value, ev.alerts) == (State.OK, Decimal("0.31"), [])


# ------------------------------------------------------------------ user and session scope


def test_a_user_budget_is_computed_from_traces(project, priced):
    alice = make_envelope(
        project,
        name="alice",
        attribute="user_id",
        attribute_value="alice",
        metric=Metric.COST,
        limit=Decimal("0.60"),
        thresholds=[100],
    )
    make_envelope(project, name="bob", attribute="user_id", attribute_value="bob")
    make_envelope(project, name="bob's chat", attribute="session_id", attribute_value="s-9")
    make_envelope(
        project,
        name="alice's agent",
        attribute="user_id",
        attribute_value="alice",
        agent="billing-agent",
    )
    runs(project, 2, at=NOW - timedelta(hours=1), user="alice")
    runs(project, 1, at=NOW - timedelta(hours=1), user="bob", session_id="s-9")
    runs(project, 1, at=NOW - timedelta(hours=1), user="bob", session_id="s-8")
    runs(project, 3, at=NOW - timedelta(hours=1))  # nobody's

    values = {ev.name: ev.value for ev in budgets_evaluate_all(now=NOW).evaluations}

    assert values == {"alice": Decimal("0.62"), "bob": 620, "bob's chat": 310, "alice's agent": 0}
    alert = Alert.objects.get(envelope=alice)
    assert len(alert.trace_ids) == 2
    assert alert.message.startswith("Daily cost budget 'alice' passed 100 %: at 103 %")


def test_a_session_budget_is_computed_from_traces(project):
    env = make_envelope(project, attribute="session_id", attribute_value="s-1", thresholds=[50])
    runs(project, 2, at=NOW - timedelta(hours=1), session_id="s-1")
    runs(project, 2, at=NOW - timedelta(hours=1), session_id="s-2")

    ev = budget_evaluate(envelope=env, now=NOW)

    assert (ev.value, ev.state) == (620, State.WARNING)


# ------------------------------------------------------------------ deliveries


@pytest.fixture
def eager_celery():
    from agentops_site.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_a_burst_past_three_thresholds_sends_one_email_for_the_highest(
    project, smtp_server, eager_celery, django_capture_on_commit_callbacks
):
    env = make_envelope(project)
    channel = Channel.objects.create(
        project=project, name="ops", kind=Channel.Kind.EMAIL, config={"to": ["ops@example.test"]}
    )
    env.channels.add(channel)
    runs(project, 4, at=NOW - timedelta(minutes=5))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        budgets_evaluate_all(now=NOW)
    with django_capture_on_commit_callbacks(execute=True) as again:
        budgets_evaluate_all(now=NOW + timedelta(minutes=1))

    assert (len(callbacks), len(again)) == (1, 0)
    assert Alert.objects.filter(envelope=env).count() == 3
    [mail] = smtp_server.messages
    assert "Support bot: 100% of the daily limit reached" in mail["Subject"]
    body = mail.get_payload(decode=True).decode() if not mail.is_multipart() else str(mail)
    assert "passed 50 %, 80 % and 100 % at once" in body
    assert "Thresholds crossed: 50 %, 80 %, 100 %" in body
    [delivery] = Delivery.objects.all()
    assert (delivery.alert.threshold, delivery.status) == (100, Delivery.Status.SENT)


def test_a_lower_threshold_alerted_in_a_burst_never_notifies_later(
    project, smtp_server, eager_celery, django_capture_on_commit_callbacks
):
    env = make_envelope(project, thresholds=[50, 80])
    env.channels.add(
        Channel.objects.create(
            project=project, name="ops", kind="email", config={"to": ["ops@example.test"]}
        )
    )
    runs(project, 3, at=NOW - timedelta(minutes=5))  # 93 %: 50 and 80 together
    with django_capture_on_commit_callbacks(execute=True):
        budgets_evaluate_all(now=NOW)
    for later in (1, 2, 30):
        with django_capture_on_commit_callbacks(execute=True) as again:
            budgets_evaluate_all(now=NOW + timedelta(minutes=later))
        assert again == []

    assert len(smtp_server.messages) == 1
    assert sorted(Alert.objects.values_list("threshold", flat=True)) == [50, 80]


# ------------------------------------------------------------------ the command


def test_the_command_prints_each_envelope(project, capsys):
    make_envelope(project)
    runs(project, 3, at=NOW - timedelta(minutes=5))

    call_command("evaluate_budgets", "--at", NOW.isoformat())

    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "Support bot: warning 930 tokens of 1,000 tokens (93 %), forecast 2,206 tokens "
        "[was ok] [2 new alert(s)]"
    )
    assert out[-1].startswith("Evaluated 1 envelopes in ")


def test_the_task_evaluates_all_or_only_the_given_projects(project, other_project):
    from budgets.tasks import evaluate_budgets

    ours = make_envelope(project)
    theirs = make_envelope(other_project)

    assert evaluate_budgets(project_ids=[other_project.pk])["evaluated"] == 1
    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert (ours.last_evaluated_at, theirs.last_evaluated_at is not None) == (None, True)
    assert evaluate_budgets()["evaluated"] == 2


def test_a_disabled_envelope_is_left_alone(project):
    env = make_envelope(project, enabled=False)
    runs(project, 4, at=NOW - timedelta(minutes=5))

    assert budgets_evaluate_all(now=NOW).evaluated == 0
    env.refresh_from_db()
    assert (env.state, env.last_evaluated_at) == (State.OK, None)


# ------------------------------------------------------------------ concurrency


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite serialises writers; PostgreSQL only"
)
@pytest.mark.django_db(transaction=True)
def test_two_evaluators_at_once_record_one_transition_and_one_alert_each(project, monkeypatch):
    import budgets.evaluate as evaluate

    env = make_envelope(project)
    for i in range(5):  # stay ok: both evaluators write their evaluation fields at once
        make_envelope(project, name=f"roomy {i}", limit=Decimal(10**6))
    runs(project, 4, at=NOW - timedelta(minutes=5))
    # Both evaluators measure first, then write together: both saw the envelope ok.
    barrier = threading.Barrier(2, timeout=20)
    real_record = evaluate._record

    def record_together(*args, **kwargs):
        barrier.wait()
        return real_record(*args, **kwargs)

    monkeypatch.setattr(evaluate, "_record", record_together)
    results, failures = [], []

    def evaluator(offset):
        try:
            results.append(budgets_evaluate_all(now=NOW + timedelta(seconds=offset)))
        except Exception as exc:  # reported by the assertion below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluator, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert failures == []
    assert changes(env) == [("ok", "exceeded")]
    assert sorted(a[1] for a in alerts(env)) == [50, 80, 100]
    assert sum(r.state_changes for r in results) == 1
    assert sum(r.alerts for r in results) == 3
    assert BudgetEnvelope.objects.filter(last_value=1240).count() == 6
