"""The whole alert path with real parts: spans through the real OTLP exporter into a
live console, a real Celery worker on Redis running the rollup, evaluation and
delivery tasks, an SMTP server and a webhook receiver on loopback.

The envelope is pushed over 80 % and then over 100 % of its limit: exactly one e-mail
and one signed webhook per threshold arrive, and evaluating again sends nothing. An
envelope pushed past all its thresholds at once sends one e-mail and one webhook."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from celery import Celery
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from budgets.models import Alert, BudgetEnvelope, Channel, Delivery
from tests.live import database_url
from tests.otlp_client import record
from tests.receivers import Receiver, RecordingHandler, free_port

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET = "whsec-e2e-0123456789abcdef"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_broker(monkeypatch):
    if not redis_available():
        reason = f"Redis is not reachable at {REDIS_URL}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    # CELERY_BROKER_URL in the environment wins over Celery(broker=…); the suite sets it
    # to memory:// (tests/conftest.py).
    monkeypatch.setenv("CELERY_BROKER_URL", REDIS_URL)
    client = Celery("e2e-client", broker=REDIS_URL)
    yield client, queue
    client.close()


@pytest.fixture
def smtp():
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def webhook():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def worker(redis_broker, smtp, live_server, settings):
    """A real `celery worker` process on the Redis broker and the test database."""
    settings.ALERTS_ALLOW_PRIVATE_URLS = True
    _, smtp_port = smtp
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_QUEUE": redis_broker[1],
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "ALERTS_ALLOW_PRIVATE_URLS": "true",
        "PUBLIC_URL": live_server.url,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "agentops_site",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def spend(live_server, secret: str, usd: str) -> None:
    """One agent run whose model call reports `usd` as its cost, sent by the real exporter."""

    def build(tracer):
        agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "billing"}
        llm = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cost": float(usd),
        }
        with (
            tracer.start_as_current_span("invoke_agent billing-agent", attributes=agent),
            tracer.start_as_current_span("chat gpt-4o-mini", attributes=llm),
        ):
            pass

    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces",
        headers={"authorization": f"Bearer {secret}"},
        compression=Compression.Gzip,
        timeout=10,
    )
    assert exporter.export(record(build)) is SpanExportResult.SUCCESS


def verify_signature(request) -> None:
    timestamp = request.headers["x-agentops-timestamp"]
    parts = dict(p.split("=", 1) for p in request.headers["x-agentops-signature"].split(","))
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert parts["t"] == timestamp
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(time.time() - int(timestamp)) < 300


def send(broker, name: str) -> None:
    client, queue = broker
    client.send_task(name, queue=queue)


def test_spend_over_80_and_100_percent_alerts_once_per_threshold(
    project, ingest_secret, live_server, worker, redis_broker, smtp, webhook
):
    def run_task(name: str) -> None:
        send(redis_broker, name)

    handler, _ = smtp
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Billing agent monthly spend",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("1.00"),
        period=BudgetEnvelope.Period.MONTH,
        timezone="UTC",
        thresholds=[80, 100],
        forecast=False,
    )
    envelope.channels.add(
        Channel.objects.create(
            project=project, name="ops mail", kind="email", config={"to": ["ops@example.test"]}
        ),
        Channel.objects.create(
            project=project,
            name="ops hook",
            kind="webhook",
            config={"url": webhook.url("/alerts"), "secret": SECRET},
        ),
    )

    # 85 %: the 80 % threshold fires.
    spend(live_server, ingest_secret, "0.85")
    # One queue, one worker process: the rollup runs before the evaluation.
    run_task("traces.tasks.rollup_spans")
    run_task("budgets.tasks.evaluate_budgets")
    wait_for(lambda: Alert.objects.filter(envelope=envelope).exists(), what="the 80 % alert")
    wait_for(lambda: len(handler.messages) >= 1 and len(webhook.requests) >= 1, what="delivery")

    # 105 %: the 100 % threshold fires; 80 % does not fire again.
    spend(live_server, ingest_secret, "0.20")
    run_task("traces.tasks.rollup_spans")
    run_task("budgets.tasks.evaluate_budgets")
    wait_for(
        lambda: Alert.objects.filter(envelope=envelope, threshold=100).exists(),
        what="the 100 % alert",
    )
    wait_for(lambda: len(handler.messages) >= 2 and len(webhook.requests) >= 2, what="delivery")

    # Evaluating again, several times, sends nothing new.
    for _ in range(3):
        run_task("budgets.tasks.evaluate_budgets")
    run_task("budgets.tasks.deliver_pending")
    wait_for(
        lambda: Delivery.objects.filter(alert__envelope=envelope, status="sent").count() == 4,
        what="all deliveries marked sent",
    )
    time.sleep(3)

    assert sorted(Alert.objects.filter(envelope=envelope).values_list("threshold", flat=True)) == [
        80,
        100,
    ]
    assert len(handler.messages) == 2
    assert len(webhook.requests) == 2
    subjects = [m["Subject"] for m in handler.messages]
    assert any("80" in s for s in subjects) and any("100" in s for s in subjects)
    for request in webhook.requests:
        verify_signature(request)
    bodies = [r.json() for r in webhook.requests]
    assert sorted(b["alert"]["threshold_percent"] for b in bodies) == [80, 100]
    assert all(b["envelope"]["name"] == "Billing agent monthly spend" for b in bodies)
    envelope.refresh_from_db()
    assert envelope.state == "exceeded"
    assert envelope.last_value == Decimal("1.05")


def test_a_burst_past_every_threshold_sends_one_message_per_channel(
    project, ingest_secret, live_server, worker, redis_broker, smtp, webhook
):
    handler, _ = smtp
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Billing agent daily spend",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("1.00"),
        period=BudgetEnvelope.Period.DAY,
        timezone="UTC",
        thresholds=[50, 80, 100],
        forecast=False,
    )
    envelope.channels.add(
        Channel.objects.create(
            project=project, name="ops mail", kind="email", config={"to": ["ops@example.test"]}
        ),
        Channel.objects.create(
            project=project,
            name="ops hook",
            kind="webhook",
            config={"url": webhook.url("/alerts"), "secret": SECRET},
        ),
    )

    # 120 % in one go: 50, 80 and 100 are crossed in the same evaluation.
    spend(live_server, ingest_secret, "1.20")
    send(redis_broker, "traces.tasks.rollup_spans")
    send(redis_broker, "budgets.tasks.evaluate_budgets")
    wait_for(lambda: Alert.objects.filter(envelope=envelope).count() == 3, what="the three alerts")
    wait_for(lambda: len(handler.messages) >= 1 and len(webhook.requests) >= 1, what="delivery")
    for _ in range(2):
        send(redis_broker, "budgets.tasks.evaluate_budgets")
    send(redis_broker, "budgets.tasks.deliver_pending")
    wait_for(
        lambda: Delivery.objects.filter(alert__envelope=envelope, status="sent").count() == 2,
        what="both deliveries marked sent",
    )
    time.sleep(3)

    assert len(handler.messages) == 1
    assert len(webhook.requests) == 1
    assert "100% of the daily limit" in handler.messages[0]["Subject"]
    verify_signature(webhook.requests[0])
    body = webhook.requests[0].json()
    assert body["alert"]["threshold_percent"] == 100
    assert body["alert"]["thresholds_crossed"] == [50, 80, 100]
    assert "passed 50 %, 80 % and 100 % at once" in body["alert"]["message"]
    assert Delivery.objects.filter(alert__envelope=envelope).count() == 2
