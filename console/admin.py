"""The Django admin as staff see it: branded, and every model listed under a name that
reads well.

The names are set here, on the models' options at start-up, rather than in each model's
Meta: Meta options are part of the migration state, so renaming there would add a
schema-less migration to every app for a label only the admin shows. The migration
autodetector reads the options a model declared, which this leaves alone.
"""

from __future__ import annotations

from django.contrib import admin

from budgets.models import Channel, Delivery, StateChange
from controls.models import ReviewSla
from rollouts.models import Kpi

admin.site.site_header = "AgentOps Console"
admin.site.site_title = "AgentOps Console"
admin.site.index_title = "AgentOps Console administration"

# (model, singular, plural) where Django's default ("deliverys", "kpis", "review slas")
# reads badly or says less than the console does; the others' defaults read well
# ("budget envelopes", "promotion criteria", "ingest batches", …), as
# tests/console/test_admin_names.py checks for every registered model.
ADMIN_NAMES = [
    (Channel, "alert channel", "alert channels"),
    (Delivery, "delivery", "deliveries"),
    (StateChange, "budget state change", "budget state changes"),
    (Kpi, "KPI", "KPIs"),
    (ReviewSla, "review SLA", "review SLAs"),
]

for model, singular, plural in ADMIN_NAMES:
    model._meta.verbose_name = singular
    model._meta.verbose_name_plural = plural
