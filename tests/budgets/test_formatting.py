"""One way to write a budget figure, whoever writes it: the alert message, the
notification, the page and the chart say the same thing for the same value."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from budgets.evaluate import alert_message
from budgets.formatting import format_value
from budgets.models import Alert, BudgetEnvelope
from budgets.templatetags.budget_display import metric_value
from budgets.transports.base import AlertMessage

Metric = BudgetEnvelope.Metric


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        (Metric.COST, Decimal("1234.5"), "$1,234.50"),
        (Metric.COST, Decimal("0.0123456"), "$0.0123"),
        (Metric.RUN_COST, Decimal("0.000735"), "$0.000735"),
        (Metric.TOKENS, Decimal("1250000"), "1,250,000 tokens"),
        (Metric.P95_LATENCY, Decimal("2.414"), "2.41 s"),
        (Metric.RUN_DURATION, Decimal("125"), "2 min 05 s"),
        (Metric.ERROR_RATE, Decimal("3.5"), "3.5 %"),
        (Metric.ERROR_RATE, 3.46, "3.5 %"),
        (Metric.COST, None, "—"),
    ],
)
def test_it_writes_each_metric_in_its_unit(metric, value, text):
    assert format_value(metric, value) == text


def test_a_metric_it_does_not_know_is_a_plain_number():
    # A row saved around the choices must still render, not fail the page.
    assert format_value("no_such_metric", Decimal("1234.50")) == "1,234.5"


def error_rate_envelope() -> BudgetEnvelope:
    return BudgetEnvelope(
        pk=7,
        name="API",
        metric=Metric.ERROR_RATE,
        limit=Decimal("5"),
        period=BudgetEnvelope.Period.DAY,
        timezone="UTC",
        thresholds=[50],
    )


@pytest.mark.django_db
def test_an_error_rate_reads_the_same_in_the_message_the_notification_and_the_page(project):
    envelope = error_rate_envelope()
    envelope.project = project
    start = datetime(2026, 11, 14, tzinfo=UTC)
    end = datetime(2026, 11, 15, tzinfo=UTC)
    value = Decimal("3.5")
    text = alert_message(
        envelope, kind="threshold", threshold=50, value=value, forecast=None, start=start, end=end
    )
    alert = Alert(
        pk=1,
        envelope=envelope,
        project=project,
        kind="threshold",
        threshold=50,
        period_start=start,
        period_end=end,
        value=value,
        limit=envelope.limit,
        message=text,
        trace_ids=[],
        created_at=end,
    )
    notification = AlertMessage.from_alert(alert)

    assert "3.5 % of 5.0 %" in text
    assert notification.value_display == "3.5 %"
    assert notification.limit_display == "5.0 %"
    assert metric_value(value, Metric.ERROR_RATE) == "3.5 %"
