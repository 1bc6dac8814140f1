"""Badges other apps put on the spans of a trace's timeline.

`traces` imports none of the other apps, yet the timeline shows what they found about a
span (a tool call checked against its contract, a duplicate side effect …). They register
a provider here when Django starts (their `AppConfig.ready`); the timeline asks every
provider for the badges of one trace, or of one span for the side panel.

A provider takes the trace and, optionally, the span ids to restrict to, and returns
{span_id: [SpanBadge, …]}. It must be cheap: one indexed query per trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from traces.models import Trace

logger = logging.getLogger(__name__)

TONES = ("ok", "info", "warn", "danger")


@dataclass(frozen=True, slots=True)
class SpanBadge:
    label: str  # short, shown on the waterfall row
    tone: str  # one of TONES
    title: str  # the reason in full, shown on hover and in the span panel
    source: str = ""  # which control said so, e.g. "Tool contract"

    def row(self) -> list[str]:
        return [self.label, self.tone, self.title]


Provider = Callable[..., Mapping[str, Iterable[SpanBadge]]]
_providers: list[Provider] = []


def span_badge_provider(provider: Provider) -> Provider:
    """Register `provider(trace=..., span_ids=None | list[str])`. Idempotent."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def span_badges(*, trace: Trace, span_ids: list[str] | None = None) -> dict[str, list[SpanBadge]]:
    """Every provider's badges of the trace's spans (or of `span_ids` only), in
    registration order. A provider that fails is logged and skipped: a badge is never
    worth a timeline that does not open."""
    out: dict[str, list[SpanBadge]] = {}
    for provider in _providers:
        try:
            found = provider(trace=trace, span_ids=span_ids)
        except Exception:
            logger.exception("span badge provider %r failed", provider)
            continue
        for span_id, badges in found.items():
            out.setdefault(span_id, []).extend(badges)
    return out
