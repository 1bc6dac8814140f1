from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from budgets.models import BudgetEnvelope, Channel
from budgets.validation import EnvelopeForm, envelope_clean

VALID = {
    "metric": "cost_usd",
    "period": "month",
    "limit": Decimal("500"),
    "thresholds": [100, 50, 80],
    "timezone": "Europe/Paris",
}


def errors(**changes) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as exc:
        envelope_clean(**(VALID | changes))
    return exc.value.message_dict


def test_valid_settings_come_back_normalised():
    cleaned = envelope_clean(**VALID)
    assert cleaned["thresholds"] == [50, 80, 100]
    assert cleaned["rolling_minutes"] is None


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ([], "at least one"),
        ("50,80", "at least one"),
        ([50, 50], "distinct"),
        ([0, 80], "between 1 and 1000"),
        ([80, 1001], "between 1 and 1000"),
        ([80.5], "whole percentages"),
        ([True], "whole percentages"),
        (["80"], "whole percentages"),
    ],
)
def test_thresholds_are_distinct_whole_percentages(thresholds, message):
    assert list(errors(thresholds=thresholds)) == ["thresholds"]
    assert message in errors(thresholds=thresholds)["thresholds"][0]


@pytest.mark.parametrize("tz", ["Mars/Olympus", "europe/paris", "", "../etc/passwd"])
def test_the_time_zone_is_an_iana_name(tz):
    assert "not an IANA time zone" in errors(timezone=tz)["timezone"][0]


@pytest.mark.parametrize(
    ("period", "minutes", "ok"),
    [
        ("rolling", 60, True),
        ("rolling", 15, True),
        ("rolling", None, False),
        ("rolling", 20, False),
        ("rolling", 0, False),
        ("rolling", 31 * 24 * 60 + 15, False),
        ("day", 60, False),
        ("day", None, True),
    ],
)
def test_rolling_minutes_go_with_rolling_windows_only(period, minutes, ok):
    if ok:
        envelope_clean(**(VALID | {"period": period, "rolling_minutes": minutes}))
    else:
        assert list(errors(period=period, rolling_minutes=minutes)) == ["rolling_minutes"]


@pytest.mark.parametrize(
    ("metric", "period", "ok"),
    [
        ("tokens", "week", True),
        ("cost_usd", "rolling", True),
        ("p95_run_latency_s", "rolling", True),
        ("p95_run_latency_s", "day", True),
        ("p95_run_latency_s", "month", False),
        ("error_rate", "week", False),
        ("run_cost_usd", "day", True),
        ("run_duration_s", "hour", True),
        ("run_cost_usd", "month", False),
        ("run_duration_s", "rolling", False),
    ],
)
def test_metrics_go_with_compatible_periods(metric, period, ok):
    settings = {"metric": metric, "period": period, "limit": Decimal(10)}
    settings["rolling_minutes"] = 60 if period == "rolling" else None
    if ok:
        envelope_clean(**(VALID | settings))
    else:
        assert list(errors(**settings)) == ["period"]


@pytest.mark.parametrize(
    ("metric", "limit", "message"),
    [
        ("cost_usd", Decimal(0), "greater than 0"),
        ("cost_usd", Decimal(-5), "greater than 0"),
        ("cost_usd", None, "Set a limit"),
        ("error_rate", Decimal(101), "at most 100"),
        ("tokens", Decimal("10.5"), "whole number"),
    ],
)
def test_the_limit_is_positive_and_fits_its_metric(metric, limit, message):
    period = "day"
    assert message in errors(metric=metric, limit=limit, period=period)["limit"][0]


def test_an_attribute_needs_its_value_and_the_other_way_round():
    assert list(errors(attribute="user_id")) == ["attribute_value"]
    assert list(errors(attribute_value="alice")) == ["attribute_value"]
    cleaned = envelope_clean(**VALID, attribute="user_id", attribute_value=" alice ")
    assert cleaned["attribute_value"] == "alice"


def test_a_user_budget_cannot_be_narrowed_to_a_model():
    assert list(errors(attribute="user_id", attribute_value="alice", model="gpt-4o")) == ["model"]


@pytest.mark.parametrize("metric", ["run_cost_usd", "run_duration_s"])
def test_a_per_run_cap_cannot_be_narrowed_to_a_model(metric):
    # A run has no single model: such a cap could measure nothing but the whole run.
    assert list(errors(metric=metric, period="day", model="gpt-4o")) == ["model"]


def test_every_problem_is_reported_on_its_own_field():
    found = errors(thresholds=[], timezone="Nowhere", limit=Decimal(0), rolling_minutes=30)
    assert sorted(found) == ["limit", "rolling_minutes", "thresholds", "timezone"]


# ------------------------------------------------------------------ the form


def form_data(project, **changes):
    return {
        "project": project.pk,
        "name": "Support bot",
        "enabled": "on",
        "metric": "cost_usd",
        "limit": "1000",
        "period": "month",
        "timezone": "Europe/Paris",
        "thresholds": "100, 50, 80",
        "forecast": "on",
        "attribute": "",
    } | changes


@pytest.mark.django_db
def test_the_form_saves_sorted_thresholds(project):
    form = EnvelopeForm(data=form_data(project))
    assert form.is_valid(), form.errors
    envelope = form.save()
    assert envelope.thresholds == [50, 80, 100]
    assert envelope.rolling_minutes is None


@pytest.mark.django_db
def test_the_form_puts_each_error_on_its_field(project):
    form = EnvelopeForm(
        data=form_data(
            project,
            thresholds="50, fifty",
            timezone="Mars/Olympus",
            metric="p95_run_latency_s",
            period="month",
        )
    )
    assert not form.is_valid()
    assert sorted(form.errors) == ["period", "thresholds", "timezone"]

    form = EnvelopeForm(data=form_data(project, metric="error_rate", limit="120"))
    assert not form.is_valid()
    assert sorted(form.errors) == ["limit", "period"]

    form = EnvelopeForm(data=form_data(project, period="rolling"))
    assert not form.is_valid()
    assert sorted(form.errors) == ["rolling_minutes"]


@pytest.mark.django_db
def test_the_form_refuses_another_projects_channel(project, other_project):
    theirs = Channel.objects.create(project=other_project, name="theirs", kind="email")
    form = EnvelopeForm(data=form_data(project, channels=[theirs.pk]))
    assert not form.is_valid()
    assert "another project" in form.errors["channels"][0]
    assert not BudgetEnvelope.objects.exists()
