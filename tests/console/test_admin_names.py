"""The admin is branded and lists every model under a name that reads well."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.test import Client

from tests.factories import UserFactory

# What Django makes of a class name that does not pluralise with an "s": "deliverys",
# "statuss", "criterias", and acronyms in lower case ("kpis", "review slas").
BAD = re.compile(r"([^aeiou]ys|ss|xs|chs|shs|criterias|\bkpis|\bslas)$")


def test_every_admin_list_name_reads_well():
    names = {m.__name__: str(m._meta.verbose_name_plural) for m in admin.site._registry}
    assert names["Delivery"] == "deliveries"
    assert names["Kpi"] == "KPIs"
    assert names["BudgetEnvelope"] == "budget envelopes"
    assert names["PromotionCriteria"] == "promotion criteria"
    assert names["ReviewSla"] == "review SLAs"
    bad = {m: n for m, n in names.items() if BAD.search(n)}
    assert not bad


@pytest.mark.django_db
def test_the_admin_is_branded():
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)

    page = client.get("/admin/").content.decode()

    assert "<title>AgentOps Console administration | AgentOps Console</title>" in page
    assert ">AgentOps Console</a>" in page
    assert "Deliveries" in page and "KPIs" in page and "Budget envelopes" in page
    assert "Deliverys" not in page and "Kpis" not in page
