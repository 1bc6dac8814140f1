"""Per-process caches on the ingest path: the key check and the price overrides, each a
query per request otherwise. Both expire; revoking a key clears it at once here."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from traces import pricing
from traces.models import IngestKey, ModelPriceOverride
from traces.pricing import PriceBook
from traces.services import ingest_key_authenticate, ingest_key_revoke

pytestmark = pytest.mark.django_db


@pytest.fixture
def caching(settings):
    settings.INGEST_KEY_CACHE_SECONDS = 10
    settings.PRICE_OVERRIDES_CACHE_SECONDS = 10


def test_a_checked_key_needs_no_query_until_it_expires(caching, ingest_secret):
    assert ingest_key_authenticate(secret=ingest_secret) is not None
    with CaptureQueriesContext(connection) as queries:
        match = ingest_key_authenticate(secret=ingest_secret)
    assert match is not None and len(queries) == 0


def test_revoking_a_key_refuses_it_at_once_in_this_process(caching, ingest_secret):
    assert ingest_key_authenticate(secret=ingest_secret) is not None
    ingest_key_revoke(key=IngestKey.objects.get())
    assert ingest_key_authenticate(secret=ingest_secret) is None


def test_a_key_revoked_elsewhere_is_refused_once_the_entry_expires(
    caching, settings, ingest_secret
):
    assert ingest_key_authenticate(secret=ingest_secret) is not None
    # Another process revokes it: this one still trusts its entry until it expires.
    IngestKey.objects.update(revoked_at=datetime.now(UTC))
    assert ingest_key_authenticate(secret=ingest_secret) is not None
    settings.INGEST_KEY_CACHE_SECONDS = 0
    assert ingest_key_authenticate(secret=ingest_secret) is None


def test_unknown_keys_are_not_remembered(caching):
    assert ingest_key_authenticate(secret="ak_unknown") is None
    with CaptureQueriesContext(connection) as queries:
        assert ingest_key_authenticate(secret="ak_unknown") is None
    assert len(queries) == 1


def test_price_overrides_are_read_again_when_the_book_expires(caching, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(pricing.time, "monotonic", lambda: clock[0])
    at = datetime(2026, 11, 1, tzinfo=UTC)

    def cost():
        return (
            PriceBook.load()
            .price(provider="acme", model="acme-1", at=at, input_tokens=1_000_000)
            .cost_usd
        )

    assert cost() is None  # unpriced
    ModelPriceOverride.objects.create(
        provider="", model="acme-1", effective_from=at, input_per_mtok=Decimal(2),
        output_per_mtok=Decimal(4),
    )  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        assert cost() is None  # the cached book, no query
    assert len(queries) == 0
    clock[0] += 10
    assert cost() == Decimal(2)
