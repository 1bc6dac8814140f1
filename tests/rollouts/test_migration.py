"""The models moved from traces to rollouts without moving their rows."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from rollouts.models import Kpi, RunRollup, RunRollupWatermark

BEFORE_TRACES = ("traces", "0008_trace_merge_keys")


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_the_move_are_read_after_it():
    executor = _migrate([BEFORE_TRACES, ("rollouts", None)])
    old = executor.loader.project_state([BEFORE_TRACES]).apps
    project = old.get_model("traces", "Project").objects.create(slug="p", name="P")
    old.get_model("traces", "Kpi").objects.create(project_id=project.pk, name="resolved")
    old.get_model("traces", "RunRollup").objects.create(
        project_id=project.pk, day=date(2026, 3, 1), agent="a", runs=7, outcomes={"kpi:x": {}}
    )
    old.get_model("traces", "RunRollupWatermark").objects.create(key="runs")

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert Kpi.objects.get(project_id=project.pk).name == "resolved"
    assert RunRollup.objects.get(project_id=project.pk).runs == 7
    assert RunRollupWatermark.objects.get().key == "runs"
    assert Kpi._meta.db_table == "traces_kpi"
