import pytest

from budgets.demo import DEMO_ENVELOPES, demo_budgets_ensure
from budgets.models import BudgetEnvelope
from budgets.validation import envelope_clean

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("spec", DEMO_ENVELOPES, ids=lambda s: s["name"])
def test_every_demo_envelope_passes_the_admins_validation(spec):
    envelope_clean(
        metric=spec["metric"],
        period=spec["period"],
        limit=spec["limit"],
        thresholds=spec["thresholds"],
        rolling_minutes=spec.get("rolling_minutes"),
    )


def test_demo_budgets_are_created_once(project):
    demo_budgets_ensure(project=project)
    demo_budgets_ensure(project=project)
    assert BudgetEnvelope.objects.filter(project=project).count() == len(DEMO_ENVELOPES)
    assert all(e.channels.count() == 1 for e in BudgetEnvelope.objects.all())
