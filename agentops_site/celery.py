"""The Celery app, and the wiring between apps' tasks. Tasks live in each app's tasks.py;
the schedule is in settings (CELERY_BEAT_SCHEDULE).

What runs after what is written here, not in signals: an app's task does its own work
and returns what the next step needs, and this module chains them.

    beat, every ROLLUP_EVERY_SECONDS
      └─ fold_then_evaluate
           = traces.tasks.rollup_spans          pending spans → 15-minute rollups
             → evaluate_folded_projects         budgets of the projects that got spend

    beat, every minute
      └─ review_sla_alerts                      review items past their SLA → one alert
                                                each (console/review_alerts.py)
"""

import os

from celery import Celery, chain

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")

app = Celery("agentops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="agentops_site.fold_then_evaluate", ignore_result=True)
def fold_then_evaluate() -> None:
    """Fold new spans into the rollups, then evaluate at once the budgets of the projects
    whose rollups just received spend, so an alert follows the spend that caused it
    within one fold (the scheduled evaluation still covers period changes and rolling
    windows that move without new spans)."""
    from traces.tasks import rollup_spans

    chain(rollup_spans.s(), evaluate_folded_projects.s(), app=app).delay()


@app.task(name="agentops_site.evaluate_folded_projects", ignore_result=True)
def evaluate_folded_projects(folded: dict) -> dict | None:
    """The second link: `folded` is what rollup_spans returned. Evaluates, in this task,
    the budgets of its projects (as budgets.tasks.evaluate_budgets does for all); an
    empty fold evaluates nothing."""
    from budgets.evaluate import budgets_evaluate_all

    if not folded.get("project_ids"):
        return None
    return budgets_evaluate_all(project_ids=folded["project_ids"]).as_dict()


@app.task(name="agentops_site.review_sla_alerts", ignore_result=True)
def review_sla_alerts() -> dict:
    """Review items waiting past their SLA alert once through the project's channels:
    the queue is controls', the channels budgets', so console composes them."""
    from console.review_alerts import review_sla_alerts_send

    return review_sla_alerts_send()
