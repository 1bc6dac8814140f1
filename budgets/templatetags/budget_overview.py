"""The Overview shows cost against the budgets through this tag; the page composes the
apps, and the budget card's data comes from budgets' own selector."""

from django import template

from budgets.selectors import cost_envelope_rows

register = template.Library()


@register.inclusion_tag("budgets/partials/overview_budgets.html")
def cost_budgets(project):
    """The project's enabled cost envelopes for the day and the month, with usage."""
    return {"rows": cost_envelope_rows(project=project), "project": project}
