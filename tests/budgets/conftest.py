"""Fixtures of the budgets tests: alerts to deliver, and real receivers on loopback
(an SMTP server and an HTTP server) instead of mocks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiosmtpd.controller import Controller

# The admin registers these on import; budgets/admin.py imports the module in the
# project, and the URLconf must see the registration whichever loads first.
import budgets.admin_channels  # noqa: F401
from budgets.models import Alert, BudgetEnvelope, Channel
from tests.receivers import Receiver, RecordingHandler, free_port

TRACE_IDS = ["0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"]


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def allow_private_urls(settings):
    """The loopback receivers are private addresses: allowed here, as a console inside
    a private network would allow them."""
    settings.ALERTS_ALLOW_PRIVATE_URLS = True


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.PUBLIC_URL = "https://console.example.test"
    settings.ALERT_HTTP_TIMEOUT = 5


# ------------------------------------------------------------------ SMTP receiver


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server (aiosmtpd) on loopback, with Django's SMTP backend pointed at it."""
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "AgentOps Console <alerts@console.example.test>"
    yield handler
    controller.stop()


# ------------------------------------------------------------------ budgets and alerts


@pytest.fixture
def envelope(project):
    return BudgetEnvelope.objects.create(
        project=project,
        name="Monthly LLM spend",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("100"),
        period=BudgetEnvelope.Period.MONTH,
        thresholds=[80, 100],
    )


@pytest.fixture
def make_alert(envelope):
    def make(threshold: int = 80, value: str = "81.25", kind: str = Alert.Kind.THRESHOLD):
        return Alert.objects.create(
            envelope=envelope,
            project=envelope.project,
            kind=kind,
            threshold=threshold,
            period_start=datetime(2025, 6, 1, tzinfo=UTC),
            period_end=datetime(2025, 7, 1, tzinfo=UTC),
            value=Decimal(value),
            limit=envelope.limit,
            message=f"Monthly LLM spend is at {threshold}% of its $100.00 monthly limit.",
            trace_ids=TRACE_IDS,
            created_at=datetime(2025, 6, 14, 9, 30, tzinfo=UTC),
        )

    return make


@pytest.fixture
def alert(make_alert):
    return make_alert()


@pytest.fixture
def make_channel(envelope):
    """A channel of the envelope's project, linked to the envelope. The config is
    stored as given (no write-time validation), as a row edited behind the console's
    back would be."""

    def make(kind: str, config: dict, name: str | None = None, link: bool = True) -> Channel:
        channel = Channel.objects.create(
            project=envelope.project, name=name or f"{kind} channel", kind=kind, config=config
        )
        if link:
            envelope.channels.add(channel)
        return channel

    return make


WEBHOOK_SECRET = "s3cret-for-tests-0123456789"


@pytest.fixture
def webhook_channel(make_channel, receiver, allow_private_urls):
    return make_channel(
        "webhook",
        {"url": receiver.url(), "secret": WEBHOOK_SECRET, "headers": {"X-Team": "payments"}},
    )
