"""Review items waiting past their SLA → one alert each, through the project's alert
channels (e-mail, Slack, signed webhook).

Composed here because it needs both sides: the queue is `controls`', the channels and
their transports are `budgets`', and neither app may import the other. The item raises
its alert once: `review_sla_alert_claim` is a compare-and-set on `sla_alerted_at`, so
concurrent or repeated runs send nothing twice. The message goes to every enabled,
unmuted channel of the item's project through the same transports as budget alerts
(`kind` "review_sla"); a permanent error disables the channel as for a budget alert.
Budget deliveries are rows tied to a budget alert, so these sends are logged, not
stored: when no channel took the message and an error was temporary, the claim is
released and the next run tries again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone

from budgets.models import Channel
from budgets.notify import channel_disable
from budgets.transports import AlertMessage, TransportError, transport_get
from budgets.transports.base import TraceLink, public_url
from controls.models import ReviewItem
from controls.review import (
    review_sla_alert_claim,
    review_sla_alert_release,
    review_sla_due,
    review_waiting,
)
from traces import display

logger = logging.getLogger(__name__)

KIND = "review_sla"


def review_sla_message(item: ReviewItem, *, now: datetime) -> AlertMessage:
    """The alert of one late item, in the shape every transport renders."""
    waiting = review_waiting(item, now=now)
    waited_min = Decimal(int(waiting["waited"].total_seconds() // 60))
    sla_min = Decimal(int(waiting["sla"].total_seconds() // 60)) if waiting["sla"] else Decimal(0)
    what = " → ".join(x for x in (item.agent, item.tool) if x) or item.get_source_display()
    url = public_url(reverse("review-item", kwargs={"item_id": item.pk}))
    waited = display.duration(waiting["waited"].total_seconds() * 1000)
    message = (
        f"{item.get_source_display()} from {what} has waited {waited} for a person, "
        f"past its SLA of {sla_min} min."
    )
    traces: tuple[TraceLink, ...] = ()
    if item.trace_id:
        path = reverse(
            "trace-timeline", kwargs={"slug": item.project.slug, "trace_id": item.trace_id}
        )
        traces = (TraceLink(trace_id=item.trace_id, url=public_url(path)),)
    confidence = item.confidence if item.confidence is not None else "—"
    lines = [
        message,
        "",
        f"Reason: {item.reason or '—'}",
        f"Risk: {item.risk or '—'} · confidence: {confidence}",
        f"Project: {item.project.name}",
        f"Claim and decide: {url}",
    ]
    base = AlertMessage(
        alert_id=None,
        kind=KIND,
        status="firing",
        title=f"Review waiting past its SLA: {what}",
        text="",
        severity="critical" if item.risk == "critical" else "warning",
        message=message,
        project=item.project.name,
        project_slug=item.project.slug,
        envelope="",
        envelope_id=None,
        metric="",
        metric_label="Minutes waiting",
        value=waited_min,
        limit=sla_min,
        threshold=100,
        period="",
        period_start=item.created_at,
        period_end=now,
        timezone="UTC",
        created_at=now,
        url=url,
        traces=traces,
    )
    return replace(base, text="\n".join(lines))


def review_sla_alert_send(*, item_id: int, now: datetime) -> int | None:
    """Claim the item's SLA alert and send it; the channels reached, or None when another
    run holds the claim (or the item is no longer late and open)."""
    if not review_sla_alert_claim(item_id=item_id, now=now):
        return None
    item = ReviewItem.objects.select_related("project").get(pk=item_id)
    message = review_sla_message(item, now=now)
    sent, retry = 0, False
    channels = Channel.objects.filter(project_id=item.project_id, enabled=True, muted_at=None)
    for channel in channels.order_by("pk"):
        try:
            transport_get(channel.kind).notify(channel, message)
        except TransportError as exc:
            logger.warning("review %s SLA alert to channel %s: %s", item_id, channel.pk, exc)
            if exc.permanent:
                channel_disable(channel=channel, reason=exc.message)
            else:
                retry = True
        else:
            sent += 1
    if not sent and retry:
        review_sla_alert_release(item_id=item_id, claimed_at=now)
    logger.info("review %s past its SLA: alert sent to %s channel(s)", item_id, sent)
    return sent


def review_sla_alerts_send(*, now: datetime | None = None) -> dict[str, int]:
    """Alert once for each open item past its SLA."""
    now = now or timezone.now()
    items = review_sla_due(now=now)
    sent = [review_sla_alert_send(item_id=pk, now=now) for pk in items]
    return {"due": len(items), "alerted": sum(1 for s in sent if s is not None)}
