"""Budgets react to fresh rollups: evaluate as soon as new spend is folded, instead of
waiting for the next scheduled evaluation (which still runs, for period changes and
rolling windows that move without new spans)."""

from django.db import transaction
from django.dispatch import receiver

from traces.rollups import rollups_updated


@receiver(rollups_updated)
def evaluate_after_rollup(sender, project_ids, **kwargs):
    from budgets.tasks import evaluate_budgets

    # Only the projects that just got spend; the scheduled run still covers the rest.
    transaction.on_commit(lambda: evaluate_budgets.delay(project_ids=list(project_ids)))
