"""Validation of budget envelopes, shared by the admin (EnvelopeForm) and the REST API.

`envelope_clean()` takes the envelope's settings as plain values, returns them
normalised (thresholds sorted, rolling_minutes cleared when irrelevant) and raises a
django ValidationError whose `message_dict` maps each field to what is wrong with it.
A DRF serializer calls it from `validate()` and re-raises
`serializers.ValidationError(exc.message_dict)`.

Which metrics go with which periods, and why:

- cost and tokens: every period. They add up, so any window is a sum of rollups.
- p95 run latency and error rate: hour, day and rolling windows only. They are ratios
  over the window, not sums: over a week or a month one bad hour barely moves them and
  a breach could not recover before the month ends, so a long period hides exactly
  what such a budget is for.
- per-run caps (cost or duration of one run): hour and day only. They are read from
  the Trace table (rollups cannot tell one run from another), so the window bounds
  the rows scanned every minute; and a rolling window would restart its period every
  15 minutes and alert again about the same run.
- a user or session scope (attribute) is computed from the Trace table too, which
  knows a run's agent and service but not its model: a model cannot be combined with
  an attribute, nor with a per-run cap.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from django import forms
from django.core.exceptions import ValidationError

from budgets.models import BudgetEnvelope, Channel

Metric = BudgetEnvelope.Metric
Period = BudgetEnvelope.Period

# Periods each metric may use (see the module docstring).
METRIC_PERIODS: dict[str, tuple[str, ...]] = {
    Metric.COST: tuple(Period.values),
    Metric.TOKENS: tuple(Period.values),
    Metric.P95_LATENCY: (Period.HOUR, Period.DAY, Period.ROLLING),
    Metric.ERROR_RATE: (Period.HOUR, Period.DAY, Period.ROLLING),
    Metric.RUN_COST: (Period.HOUR, Period.DAY),
    Metric.RUN_DURATION: (Period.HOUR, Period.DAY),
}
ROLLING_STEP = 15  # minutes: the rollup bucket
ROLLING_MAX = 31 * 24 * 60  # a month; longer windows are a calendar period's job
THRESHOLD_MIN, THRESHOLD_MAX = 1, 1000


@lru_cache(maxsize=1)
def timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def thresholds_clean(value: Any) -> list[int]:
    """A non-empty list of distinct integer percentages 1..1000, returned sorted."""
    if not isinstance(value, list | tuple) or not value:
        raise ValidationError("Give at least one threshold, e.g. [50, 80, 100].")
    out: list[int] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise ValidationError(f"Thresholds are whole percentages; {item!r} is not.")
        if not THRESHOLD_MIN <= item <= THRESHOLD_MAX:
            raise ValidationError(
                f"Thresholds are between {THRESHOLD_MIN} and {THRESHOLD_MAX} %; {item} is not."
            )
        out.append(item)
    if len(set(out)) != len(out):
        raise ValidationError("Thresholds must be distinct.")
    return sorted(out)


def envelope_clean(
    *,
    metric: str,
    period: str,
    limit: Decimal | None,
    thresholds: Any,
    timezone: str = "UTC",
    rolling_minutes: int | None = None,
    model: str = "",
    attribute: str = "",
    attribute_value: str = "",
    project_id: int | None = None,
    channels: Iterable[Channel] | None = None,
) -> dict[str, Any]:
    """Check an envelope's settings together. Returns the normalised values of
    thresholds, rolling_minutes and attribute_value; raises ValidationError keyed by
    field."""
    errors: dict[str, list[str]] = {}

    def error(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    cleaned: dict[str, Any] = {
        "rolling_minutes": rolling_minutes,
        "attribute_value": (attribute_value or "").strip(),
    }

    try:
        cleaned["thresholds"] = thresholds_clean(thresholds)
    except ValidationError as exc:
        error("thresholds", exc.messages[0])

    if timezone not in timezone_names():
        error("timezone", f"{timezone!r} is not an IANA time zone (e.g. Europe/Paris, UTC).")

    if metric not in METRIC_PERIODS:
        error("metric", f"Unknown metric {metric!r}.")
    elif period not in METRIC_PERIODS[metric]:
        allowed = ", ".join(str(Period(p).label).lower() for p in METRIC_PERIODS[metric])
        error("period", f"{Metric(metric).label} budgets use one of: {allowed}.")

    if period == Period.ROLLING:
        if rolling_minutes is None:
            error("rolling_minutes", "A rolling window needs its length in minutes.")
        elif (
            rolling_minutes < ROLLING_STEP
            or rolling_minutes % ROLLING_STEP
            or rolling_minutes > ROLLING_MAX
        ):
            error(
                "rolling_minutes",
                f"The window is a multiple of {ROLLING_STEP} minutes (the rollup bucket), "
                f"from {ROLLING_STEP} to {ROLLING_MAX}.",
            )
    elif rolling_minutes is not None:
        error("rolling_minutes", "Only rolling windows have a length; leave it empty.")

    if limit is None:
        error("limit", "Set a limit.")
    elif not limit.is_finite() or limit <= 0:
        error("limit", "The limit must be greater than 0.")
    elif metric == Metric.ERROR_RATE and limit > 100:
        error("limit", "An error rate is a percentage: at most 100.")
    elif metric == Metric.TOKENS and limit != limit.to_integral_value():
        error("limit", "A token limit is a whole number.")

    if attribute and not cleaned["attribute_value"]:
        error("attribute_value", "Give the user or session id this budget is for.")
    elif not attribute and cleaned["attribute_value"]:
        error("attribute_value", "Choose an attribute (user or session id) first, or clear it.")
    if attribute and model:
        error(
            "model",
            "A user or session budget is computed per run, and a run has no single model: "
            "leave the model empty.",
        )
    elif metric in (Metric.RUN_COST, Metric.RUN_DURATION) and model:
        error(
            "model",
            "A per-run cap measures whole runs, and a run has no single model: "
            "leave the model empty.",
        )

    if channels is not None and project_id is not None:
        foreign = [c.name for c in channels if c.project_id != project_id]
        if foreign:
            error("channels", f"Channels of another project: {', '.join(foreign)}.")

    if errors:
        raise ValidationError(errors)
    return cleaned


class ThresholdsField(forms.Field):
    """Percentages typed as '50, 80, 100' (a JSON list is accepted too)."""

    default_error_messages = {"invalid": "Write whole percentages separated by commas."}

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value):
        if isinstance(value, list | tuple):
            return list(value)
        text = (value or "").strip().strip("[]")
        if not text:
            return []
        try:
            return [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None

    def validate(self, value):
        super().validate(value)
        thresholds_clean(value)


class EnvelopeForm(forms.ModelForm):
    """The envelope's settings; its evaluation fields are written by budgets.evaluate."""

    thresholds = ThresholdsField(
        initial=[50, 80, 100],
        help_text="Percentages of the limit that alert, e.g. 50, 80, 100 (1 to 1000).",
    )
    timezone = forms.ChoiceField(
        choices=(),
        initial="UTC",
        help_text="IANA zone the hours, days, weeks and months are counted in.",
    )

    class Meta:
        model = BudgetEnvelope
        fields = [
            "project",
            "name",
            "description",
            "enabled",
            "metric",
            "limit",
            "period",
            "rolling_minutes",
            "timezone",
            "thresholds",
            "forecast",
            "agent",
            "model",
            "service_name",
            "attribute",
            "attribute_value",
            "channels",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = [(z, z) for z in sorted(timezone_names())]

    def clean(self):
        data = super().clean()
        project = data.get("project") or getattr(self.instance, "project", None)
        try:
            cleaned = envelope_clean(
                metric=data.get("metric", ""),
                period=data.get("period", ""),
                limit=data.get("limit"),
                thresholds=data.get("thresholds"),
                timezone=data.get("timezone", ""),
                rolling_minutes=data.get("rolling_minutes"),
                model=data.get("model", ""),
                attribute=data.get("attribute", ""),
                attribute_value=data.get("attribute_value", ""),
                project_id=project.pk if project else None,
                channels=data.get("channels"),
            )
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                if name in self.errors:
                    continue  # the field's own error says it already
                for message in messages:
                    self.add_error(name if name in self.fields else None, message)
            return data
        data.update(cleaned)
        return data
