"""Ingest keys in the admin: created with the secret shown once, stored hashed, revocable."""

import re

import pytest
from django.test import Client

from tests.factories import UserFactory
from traces.models import IngestKey
from traces.services import ingest_key_authenticate, ingest_key_create, key_hash

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


def test_adding_a_key_shows_the_secret_once_and_stores_only_its_hash(staff_client, project):
    response = staff_client.post(
        "/admin/traces/ingestkey/add/", {"project": project.pk, "name": "ci"}, follow=True
    )

    text = response.content.decode()
    secret = re.search(r"<code>(ak_[\w-]+)</code>", text).group(1)
    key = IngestKey.objects.get(name="ci")
    assert key.key_hash == key_hash(secret)
    assert secret.startswith(key.prefix)
    assert ingest_key_authenticate(secret=secret).project_id == project.pk
    # The change page never shows it again.
    page = staff_client.get(f"/admin/traces/ingestkey/{key.pk}/change/").content.decode()
    assert secret not in page


def test_revoking_in_the_admin_stops_the_key(staff_client, project):
    new = ingest_key_create(project=project)
    staff_client.post(
        "/admin/traces/ingestkey/",
        {"action": "revoke", "_selected_action": [new.key.pk]},
        follow=True,
    )
    new.key.refresh_from_db()
    assert new.key.revoked_at is not None
    assert ingest_key_authenticate(secret=new.secret) is None


def test_using_a_key_records_when_it_was_last_used(project):
    new = ingest_key_create(project=project)
    assert new.key.last_used_at is None
    ingest_key_authenticate(secret=new.secret)
    new.key.refresh_from_db()
    assert new.key.last_used_at is not None


def test_the_admin_needs_staff(client_logged_in):
    response = client_logged_in.get("/admin/traces/ingestkey/")
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_price_overrides_show_the_packaged_price(staff_client):
    from datetime import UTC, datetime

    from traces.models import ModelPriceOverride

    ModelPriceOverride.objects.create(
        provider="openai",
        model="gpt-4o-mini",
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        input_per_mtok=1,
        output_per_mtok=2,
    )
    ModelPriceOverride.objects.create(
        model="acme-internal",
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        input_per_mtok=1,
        output_per_mtok=2,
    )
    page = staff_client.get("/admin/traces/modelpriceoverride/").content.decode()
    assert "not in price data" in page
    assert "gpt-4o-mini: in 0.15, out 0.6" in page  # packaged prices per million tokens
