"""The Overview (a traces page) shows cost against the budgets through this tag, so
that traces/ itself never imports budgets/."""

from django import template

from budgets.models import BudgetEnvelope

register = template.Library()


@register.inclusion_tag("budgets/partials/overview_budgets.html")
def cost_budgets(project):
    """The project's enabled cost envelopes for the day and the month, with usage."""
    from budgets.views import EnvelopeRow

    envelopes = BudgetEnvelope.objects.filter(
        project=project,
        enabled=True,
        metric=BudgetEnvelope.Metric.COST,
        period__in=[BudgetEnvelope.Period.DAY, BudgetEnvelope.Period.MONTH],
    ).order_by("period", "name")
    return {"rows": [EnvelopeRow(e) for e in envelopes], "project": project}
